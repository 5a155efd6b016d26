"""Head-of-line blocking: fast-event latency with and without a slow mix, with and without the slow lane.

An embedded minisentry pipeline runs a symbolicator plugin that fetches a "source map" over real
HTTP from a local server; for the slow project the server answers after ``--slow-seconds``. Fast
events (project 1) arrive at a steady rate; in the mixed runs ``--slow-share`` of all events belong
to the slow project (project 2). Three runs, each on a fresh pipeline and store:

- ``fast only``: the baseline;
- ``mixed, slow lane``: the default — project 2 gets demoted to the slow lane;
- ``mixed, no slow lane``: project 2 pinned to the fast lane (``lanes.force_fast``), i.e. FIFO.

Fast-event latency is measured from submission to the end of its symbolication. Prints p50/p99 per
run and the ratio to the baseline, then one JSON line.

Run: ``python bench/bench_slow_lane.py [--events 400] [--slow-share 0.05] [--slow-seconds 2]
[--workers 4] [--rate 100] [--backend trio|asyncio]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minisentry import Pipeline, hookimpl  # noqa: E402
from minisentry.config import config_from_dict  # noqa: E402
from minisentry.envelope import Envelope, Item, serialize_envelope  # noqa: E402
from minisentry.httpserver import HttpLimits, HttpServer, Response  # noqa: E402
from minisentry.plugin_manager import make_plugin_manager  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"
SLOW_PROJECT = 2


class SourceServer:
    """Serves /map/<project>; the slow project's answers come after a delay."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def body_limit(self, request):
        return 1024

    async def handle(self, request):
        if request.path == f"/map/{SLOW_PROJECT}":
            await anyio.sleep(self.delay)
        return Response(200, b'{"version":3,"mappings":""}')

    def error(self, exc, request):
        return Response(exc.status, b"{}")


class FetchingSymbolicator:
    name = "bench-fetch"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.done: dict[str, float] = {}

    async def symbolicate(self, message):
        (await self.client.get(f"/map/{message.project_id}")).raise_for_status()
        self.done[message.event_id] = anyio.current_time()
        return message


class Plugin:
    def __init__(self, symbolicator) -> None:
        self.symbolicator = symbolicator

    @hookimpl
    def minisentry_register_symbolicators(self):
        return [self.symbolicator]


def envelope(event_id: str, function: str) -> bytes:
    event = {"event_id": event_id, "platform": "python", "exception": {"values": [{
        "type": "ValueError", "value": "x",
        "stacktrace": {"frames": [{"module": "app", "function": function, "in_app": True}]}}]}}
    return serialize_envelope(Envelope({"event_id": event_id}, [Item({"type": "event"}, json.dumps(event).encode())]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def one_run(args, port: int, mixed: bool, slow_lane: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-lane-"))
    config = config_from_dict({
        "storage": {"path": str(tmp / "store.sqlite")},
        "stages": {"concurrency": {"symbolicate": args.workers, "symbolicate_slow": args.workers},
                   "symbolicate_deadline": 120.0, "drain_timeout": 120.0},
        "lanes": {"bucket_seconds": 1.0, "window_seconds": 30.0, "budget": 0.05, "backoff_seconds": 60.0,
                  **({} if slow_lane else {"force_fast": [SLOW_PROJECT]})},
        "projects": [{"id": 1, "slug": "fast", "keys": [KEY]}, {"id": 2, "slug": "slow", "keys": ["f" * 32]}],
    })
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300,
                                 limits=httpx.Limits(max_connections=200)) as client:
        symbolicator = FetchingSymbolicator(client)
        pm = make_plugin_manager(entry_points=False, extra=(Plugin(symbolicator),))
        submitted: dict[str, float] = {}
        slow_every = round(1 / args.slow_share) if mixed else 0
        async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
            for index in range(args.events):
                if slow_every and index % slow_every == 0:
                    await pipeline.submit(envelope(uuid.uuid4().hex, "slow"), SLOW_PROJECT)
                event_id = uuid.uuid4().hex
                submitted[event_id] = anyio.current_time()
                await pipeline.submit(envelope(event_id, "fast"), 1)
                await anyio.sleep(1 / args.rate)
            with anyio.fail_after(600):
                while not all(event_id in symbolicator.done for event_id in submitted):
                    await anyio.sleep(0.01)
            demoted = pipeline.lanes.lane_of(SLOW_PROJECT) == "slow"
    latencies = [(symbolicator.done[e] - t) * 1000 for e, t in submitted.items()]
    return {"p50_ms": round(statistics.median(latencies), 2), "p99_ms": round(percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2), "slow_project_demoted": demoted}


async def main(args) -> None:
    async with anyio.create_task_group() as tg:
        server = HttpServer(SourceServer(args.slow_seconds), HttpLimits())
        port = await tg.start(server.serve, "127.0.0.1", 0)
        results = {
            "fast only": await one_run(args, port, mixed=False, slow_lane=True),
            "mixed, slow lane": await one_run(args, port, mixed=True, slow_lane=True),
            "mixed, no slow lane": await one_run(args, port, mixed=True, slow_lane=False),
        }
        server.shutdown()
    base = results["fast only"]
    print(f"{args.events} fast events at {args.rate}/s, {args.slow_share:.0%} slow events of {args.slow_seconds}s, "
          f"{args.workers} workers per lane, backend {args.backend}")
    print(f"{'run':<22} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'p50 ×base':>10} {'p99 ×base':>10}  demoted")
    for name, r in results.items():
        print(f"{name:<22} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['max_ms']:>9.2f} "
              f"{r['p50_ms'] / base['p50_ms']:>10.1f} {r['p99_ms'] / base['p99_ms']:>10.1f}  {r['slow_project_demoted']}")
    print(json.dumps({"config": vars(args), "results": results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--slow-share", type=float, default=0.05)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="fast events per second")
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    arguments = parser.parse_args()
    anyio.run(main, arguments, backend=arguments.backend)
