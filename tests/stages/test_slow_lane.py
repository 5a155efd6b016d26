"""The slow lane: a project whose events need slow symbolication must not hold up everybody else.

A test symbolicator fetches a "source map" over real HTTP from a local server that delays the slow
project's requests by seconds. Fast-event latency is measured with and without the slow mix in the
same run and compared as a ratio; the slow project must end up demoted.
"""

from __future__ import annotations

import statistics
import uuid

import anyio
import httpx
import pytest

from minisentry import Pipeline, hookimpl
from minisentry.httpserver import HttpLimits, HttpServer, Response
from minisentry.plugin_manager import make_plugin_manager

from ..test_pipeline import error_envelope

pytestmark = pytest.mark.anyio

SLOW_PROJECT, FAST_PROJECT = 2, 1
SLOW_SECONDS = 2.0


class DelayingSourceServer:
    """Answers /map/<project>: after SLOW_SECONDS for the slow project, at once for others."""

    def body_limit(self, request):
        return 1024

    async def handle(self, request):
        if request.path == f"/map/{SLOW_PROJECT}":
            await anyio.sleep(SLOW_SECONDS)
        return Response(200, b'{"mappings":""}')

    def error(self, exc, request):
        return Response(exc.status, b"{}")


class FetchingSymbolicator:
    """Fetches each event's source map from the server and notes when the event got through."""

    name = "fetching"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.done: dict[str, float] = {}

    async def symbolicate(self, message):
        response = await self.client.get(f"/map/{message.project_id}")
        response.raise_for_status()
        self.done[message.event_id] = anyio.current_time()
        return message


class Plugin:
    def __init__(self, symbolicator) -> None:
        self.symbolicator = symbolicator

    @hookimpl
    def minisentry_register_symbolicators(self):
        return [self.symbolicator]


async def fast_latencies(pipeline, symbolicator, count: int, slow_every: int | None) -> list[float]:
    submitted: dict[str, float] = {}
    for index in range(count):
        if slow_every and index % slow_every == 0:
            await pipeline.submit(error_envelope(uuid.uuid4().hex, function="slow_path"), SLOW_PROJECT)
        event_id = uuid.uuid4().hex
        submitted[event_id] = anyio.current_time()
        await pipeline.submit(error_envelope(event_id), FAST_PROJECT)
        await anyio.sleep(0.02)
    with anyio.fail_after(60):
        while not all(event_id in symbolicator.done for event_id in submitted):
            await anyio.sleep(0.01)
    return [symbolicator.done[event_id] - start for event_id, start in submitted.items()]


async def test_fast_events_keep_their_latency_while_a_slow_project_floods(make_config):
    async with anyio.create_task_group() as tg:
        server = HttpServer(DelayingSourceServer(), HttpLimits())
        port = await tg.start(server.serve, "127.0.0.1", 0)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        symbolicator = FetchingSymbolicator(client)
        config = make_config(
            stages={"concurrency": {"symbolicate": 4, "symbolicate_slow": 2}, "symbolicate_deadline": 30.0},
            # The fast project is pinned: on a loaded machine its own (charged) durations could
            # otherwise demote it too, which is right for the selector but not what this test is about.
            lanes={"bucket_seconds": 1.0, "window_seconds": 10.0, "budget": 0.02, "backoff_seconds": 30.0,
                   "force_fast": [FAST_PROJECT]},
        )
        pm = make_plugin_manager(entry_points=False, extra=(Plugin(symbolicator),))
        async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
            alone = await fast_latencies(pipeline, symbolicator, 60, slow_every=None)
            # 5% of all events now need a slow symbolication.
            mixed = await fast_latencies(pipeline, symbolicator, 60, slow_every=20)
            assert pipeline.lanes.lane_of(SLOW_PROJECT) == "slow"  # found and demoted by its cost alone
            slow_lane = next(s for s in pipeline.statistics() if s.name == "symbolicate_slow")
            assert slow_lane.sent >= 1
        await client.aclose()
        server.shutdown()
    ratio = statistics.median(mixed) / statistics.median(alone)
    # Head-of-line blocking would put fast events behind 2 s fetches (a ratio in the hundreds);
    # the slow lane keeps the fast lane's median within a small factor of running alone.
    assert ratio < 10, (ratio, statistics.median(alone), statistics.median(mixed))


async def test_operators_pin_a_project_on_a_running_pipeline(make_config, tmp_path):
    from click.testing import CliRunner

    from minisentry.cli import cli

    from ..conftest import base_config, write_config

    config_path = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    async with Pipeline(make_config(), http=False) as pipeline:
        assert pipeline.lanes.lane_of(7) == "fast"

        def cli_run(*args):
            return CliRunner().invoke(cli, ["--config", str(config_path), *args],
                                      obj={"pm": make_plugin_manager(entry_points=False)})

        result = await anyio.to_thread.run_sync(cli_run, "lanes", "force", "7", "slow")
        assert result.exit_code == 0, result.output
        with anyio.fail_after(10):
            while pipeline.lanes.lane_of(7) != "slow":
                await anyio.sleep(0.02)
        assert "project 7: slow lane" in (await anyio.to_thread.run_sync(cli_run, "lanes", "list")).output
        await anyio.to_thread.run_sync(cli_run, "lanes", "force", "7", "auto")
        with anyio.fail_after(10):
            while pipeline.lanes.lane_of(7) != "fast":
                await anyio.sleep(0.02)
