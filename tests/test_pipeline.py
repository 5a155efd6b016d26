"""The embedded Pipeline: the same stages inside another anyio program, with and without HTTP."""

from __future__ import annotations

import uuid

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
