"""The embedded Pipeline: the same stages inside another anyio program, with and without HTTP."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

import minisentry
from minisentry.envelope import Envelope, Item, serialize_envelope
from minisentry.errors import ConfigError, InvalidEnvelope

from .conftest import KEY, running_pipeline

pytestmark = pytest.mark.anyio


def error_envelope(event_id: str, exc_type: str = "ValueError", function: str = "handler") -> bytes:
    event = {
        "event_id": event_id,
        "platform": "python",
        "exception": {"values": [{
            "type": exc_type, "value": f"bad {uuid.uuid4().hex[:6]}",
            "stacktrace": {"frames": [{"module": "app.views", "function": function, "lineno": 10,
                                       "context_line": "    raise ValueError(x)", "in_app": True}]},
        }]},
    }
    return serialize_envelope(Envelope({"event_id": event_id}, [Item({"type": "event"}, orjson.dumps(event))]))


async def test_public_api_names():
    assert set(minisentry.__all__) >= {"Pipeline", "Config", "load_config", "hookimpl", "Outcome", "errors"}
    for name in minisentry.__all__:
        assert getattr(minisentry, name) is not None


async def test_embedded_without_http_groups_and_dedups(make_config):
    config = make_config(stages={"concurrency": {"process": 3, "symbolicate": 2}})
    ids = [uuid.uuid4().hex for _ in range(20)]
    async with running_pipeline(config, http=False) as pipeline:
        assert pipeline.port is None
        for event_id in ids[:10]:
            assert await pipeline.submit(error_envelope(event_id), 1) == event_id
        for event_id in ids[10:]:
            await pipeline.submit(error_envelope(event_id, function="other"), 1)
        # Redelivery of the same events (at-least-once) must not store them or count them twice.
        for event_id in ids[:5]:
            await pipeline.submit(error_envelope(event_id), 1)
        await pipeline.flush()
        issues = await anyio.to_thread.run_sync(pipeline.store.list_issues)
        counts = await anyio.to_thread.run_sync(pipeline.store.counts)
    assert sorted(issue["count"] for issue in issues) == [10, 10]
    assert counts["events"] == 20
    assert {issue["culprit"] for issue in issues} == {"app.views in handler", "app.views in other"}


async def test_exit_drains_everything_accepted(make_config):
    ids = [uuid.uuid4().hex for _ in range(300)]
    config = make_config(channels={"capacity": 8})
    async with running_pipeline(config, http=False) as pipeline:
        for event_id in ids:
            await pipeline.submit(error_envelope(event_id), 1)
        # No flush: leaving the block must drain what is queued in every channel.
    with pipeline.store.__class__(config.storage.path) as store:
        assert store.counts()["events"] == 300


async def test_embedded_with_http_front_door(make_config):
    async with running_pipeline(make_config()) as pipeline:
        event_id = uuid.uuid4().hex
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{pipeline.port}/api/1/envelope/",
                                         content=error_envelope(event_id),
                                         headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
        assert response.status_code == 200
        await pipeline.flush()
        event = await anyio.to_thread.run_sync(pipeline.store.get_event, event_id)
        assert event["data"]["exception"]["values"][0]["type"] == "ValueError"
        assert pipeline.dsn(KEY, 1) == f"http://{KEY}@127.0.0.1:{pipeline.port}/1"


async def test_submit_rejects_malformed_and_unknown_backend(make_config):
    async with running_pipeline(make_config(), http=False) as pipeline:
        with pytest.raises(InvalidEnvelope):
            await pipeline.submit(b"{not json", 1)
    with pytest.raises(ConfigError, match="kafkaa"):
        async with running_pipeline(make_config(channels={"backend": "kafkaa"}), http=False):
            pass


async def test_statistics_report_every_channel(make_config):
    async with running_pipeline(make_config(channels={"capacity": 16, "capacities": {"store": 4}}),
                                http=False) as pipeline:
        await pipeline.submit(error_envelope(uuid.uuid4().hex), 1)
        await pipeline.flush()
        stats = {s.name: s for s in pipeline.statistics()}
    assert list(stats) == ["ingest", "symbolicate", "symbolicate_slow", "process", "store"]
    assert stats["store"].capacity == 4 and stats["ingest"].capacity == 16
    assert all(s.sent == s.acked == (0 if s.name == "symbolicate_slow" else 1) for s in stats.values())


async def test_worker_processes_store_the_same_as_in_process(make_config, tmp_path):
    """stages.process_workers moves normalization to other processes; the stored result is the same."""
    import sqlite3

    from minisentry.killswitches import validate

    results = {}
    for workers in (0, 2):
        config = make_config(storage={"path": str(tmp_path / f"w{workers}.sqlite")},
                             stages={"process_workers": workers})
        ids = [f"{n:032x}" for n in range(1, 31)]
        async with running_pipeline(config, http=False) as pipeline:
            pipeline.killswitches.replace({"drop_after_parsing": validate("drop_after_parsing", [{"event_id": ids[0]}])})
            for index, event_id in enumerate(ids):
                await pipeline.submit(error_envelope(event_id, function=f"f{index % 3}"), 1)
            await pipeline.flush(60)
        with sqlite3.connect(config.storage.path) as conn:
            # Issue ids depend on which batch finished first; the hashes they stand for must not.
            events = conn.execute("SELECT e.event_id, i.hash, e.platform, e.data FROM events e "
                                  "JOIN issues i ON i.id = e.issue_id ORDER BY e.event_id").fetchall()
            issues = conn.execute("SELECT hash, culprit, count FROM issues ORDER BY hash").fetchall()
            dropped = conn.execute("SELECT sum(quantity) FROM outcomes WHERE reason = 'killswitch'").fetchone()[0]
        data = [orjson.loads(row[3]) for row in events]
        for event in data:
            event.pop("received", None)
            event.pop("exception", None)  # the value differs per event (random suffix)
        results[workers] = ([row[:3] for row in events], [row for row in issues], dropped,
                            [sorted(event) for event in data])
    assert results[0] == results[2]
    assert len(results[2][0]) == 29 and results[2][2] == 1


def _worker_children() -> list[int]:
    """Pids of this process's live children that run anyio's process-worker module."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"anyio.to_process" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


async def test_worker_processes_start_with_the_pipeline_not_with_the_first_event(make_config):
    """Starting a worker costs ~0.5 s of CPU: it is paid at startup, before any event arrives."""
    async with running_pipeline(make_config(stages={"process_workers": 2}), http=False) as pipeline:
        with anyio.fail_after(30):
            while len(_worker_children()) < 2:
                await anyio.sleep(0.05)
        assert len(_worker_children()) == 2
        assert (await anyio.to_thread.run_sync(pipeline.store.counts))["events"] == 0


async def test_a_broken_worker_process_loses_no_batch(make_config, monkeypatch):
    from anyio import BrokenWorkerProcess

    async def broken(*args, **kwargs):
        raise BrokenWorkerProcess("worker killed")

    monkeypatch.setattr(anyio.to_process, "run_sync", broken)
    ids = [uuid.uuid4().hex for _ in range(5)]
    async with running_pipeline(make_config(stages={"process_workers": 1}), http=False) as pipeline:
        for event_id in ids:
            await pipeline.submit(error_envelope(event_id), 1)
        await pipeline.flush()
        counts = await anyio.to_thread.run_sync(pipeline.store.counts)
    assert counts["events"] == 5
