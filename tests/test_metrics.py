"""/metrics, readiness from backlog and staleness, and `minisentry status` against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

import anyio
import httpx
import pytest

from minisentry.channels import ChannelStats
from minisentry.metrics import health_of, parse, render

from .conftest import KEY, running_pipeline
from .test_pipeline import error_envelope


def stats(name="ingest", depth=0, capacity=10, oldest=0.0) -> ChannelStats:
    return ChannelStats(name=name, capacity=capacity, depth=depth, peak_depth=depth, senders_waiting=0,
                        receivers_waiting=1, sent=5, acked=5, in_flight=0, oldest_age=oldest)


def test_health_verdicts():
    assert health_of(True, [stats(), stats("store")], 30).ready
    assert health_of(False, [stats()], 30).reasons == ("pipeline is starting or draining",)
    full = health_of(True, [stats(depth=10), stats("store")], 30)
    assert not full.ready and "channel ingest is full (10/10)" in full.reasons
    stale = health_of(True, [stats(), stats("store", depth=1, oldest=31.0)], 30)
    assert not stale.ready and "store" in stale.reasons[0]
    # A full channel further down is backpressure, not unreadiness, until it goes stale.
    assert health_of(True, [stats(), stats("store", depth=10, oldest=1.0)], 30).ready


def test_render_parse_round_trip():
    text = render([stats(depth=3, oldest=1.5), stats("store")], {"minisentry_events_stored_total": (7, "x")}, True)
    assert '# TYPE minisentry_channel_depth gauge' in text
    assert 'minisentry_channel_depth{channel="ingest"} 3' in text
    channels, counters = parse(text + "garbage line\n{}\n")
    assert channels["ingest"]["depth"] == 3 and channels["ingest"]["oldest_age_seconds"] == 1.5
    assert counters == {"minisentry_events_stored_total": 7, "minisentry_ready": 1}


@pytest.mark.anyio
async def test_metrics_and_ready_on_a_running_pipeline(make_config):
    gate = threading.Event()
    config = make_config(stages={"stale_after": 0.2}, storage={"batch_size": 1})
    async with running_pipeline(config) as pipeline:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            await pipeline.submit(error_envelope(uuid.uuid4().hex), 1)
            await pipeline.flush()
            text = (await client.get("/metrics")).text
            channels, counters = parse(text)
            assert set(channels) == {"ingest", "symbolicate", "symbolicate_slow", "process", "store"}
            assert counters["minisentry_events_stored_total"] == 1
            assert (await client.get("/api/relay/healthcheck/ready/")).status_code == 200

            real_write = pipeline.store.write_batch
            pipeline.store.write_batch = lambda events, outcomes: (gate.wait(30), real_write(events, outcomes))[1]
            for _ in range(3):
                await pipeline.submit(error_envelope(uuid.uuid4().hex), 1)
            with anyio.fail_after(10):
                while (ready := await client.get("/api/relay/healthcheck/ready/")).status_code == 200:
                    await anyio.sleep(0.05)
            assert ready.status_code == 503
            assert any("oldest message waited" in reason for reason in ready.json()["reasons"])
            assert (await client.get("/api/relay/healthcheck/live/")).status_code == 200
            gate.set()
            await pipeline.flush()
            assert (await client.get("/api/relay/healthcheck/ready/")).status_code == 200


def test_status_command_reads_a_running_server(server_factory):
    server = server_factory()
    httpx.post(f"{server.url}/api/1/envelope/", content=error_envelope(uuid.uuid4().hex),
               headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
    result = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "status",
                             "--url", server.url, "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["channels"]["ingest"]["capacity"] == 2048
    assert data["counters"]["minisentry_envelopes_accepted_total"] == 1
    text = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "status",
                           "--url", server.url], capture_output=True, text=True, timeout=60)
    assert "symbolicate" in text.stdout and "envelopes_accepted_total: 1" in text.stdout
    down = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "status",
                           "--url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert down.returncode != 0 and "cannot reach minisentry" in down.stderr
