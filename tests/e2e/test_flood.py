"""A flood at several times the pipeline's capacity against the real server.

What must hold: memory stays bounded, clients get 429 + Retry-After instead of a growing queue, the
real sentry-sdk backs off after its 429, health checks keep answering, and every event answered 200
is stored exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

import httpx
import pytest
import sentry_sdk

from ..conftest import KEY, OTHER_KEY, base_config
from .test_sdk import close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e

# Big events cost the pipeline far more than the relay (normalization parses every byte), so a
# few client threads outrun it by a wide margin; the limits below are what is under test.
BIG_MESSAGE = "x" * 400_000


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_flood_gets_429_sdk_backs_off_nothing_accepted_is_lost(tmp_path, server_factory):
    raw = base_config(tmp_path, channels={"capacity": 4}, stages={"enqueue_timeout": 0.05, "retry_after": 3},
                      storage={"batch_size": 50})
    server = server_factory(raw)
    accepted: list[str] = []
    statuses: dict[int, int] = {}
    health: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def flood():
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(400):
                if stop.is_set():
                    return
                event_id = uuid.uuid4().hex
                body = "\n".join([json.dumps({"event_id": event_id}), '{"type":"event"}',
                                  json.dumps({"event_id": event_id, "message": BIG_MESSAGE})])
                response = client.post("/api/1/envelope/", content=body,
                                       headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 200:
                        accepted.append(event_id)
                if response.status_code == 429:
                    assert response.headers["retry-after"] == "3"

    def probe_health():
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                health.append(client.get("/api/relay/healthcheck/live/").status_code)
                time.sleep(0.05)

    threads = [threading.Thread(target=flood) for _ in range(6)] + [threading.Thread(target=probe_health)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: statuses.get(429, 0) >= 20, timeout=60)

        # The real SDK, on another project, while the flood goes on.
        init_sdk(server.dsn(OTHER_KEY, 2))
        transport = sentry_sdk.get_client().transport
        captured = 0
        deadline = time.monotonic() + 30
        while not transport._disabled_until and time.monotonic() < deadline:
            sentry_sdk.capture_message(f"during the flood {captured}")
            captured += 1
            sentry_sdk.flush(timeout=5)
        assert transport._disabled_until, "the SDK never saw a 429"
        # While it backs off the SDK drops new events itself instead of sending them.
        for index in range(20):
            sentry_sdk.capture_message(f"while backing off {index}")
        sentry_sdk.flush(timeout=5)
        sent_by_sdk = captured
        close_sdk()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    assert statuses.get(429, 0) > 0 and statuses.get(200, 0) > 0
    assert set(statuses) <= {200, 429}, statuses
    assert health and set(health) == {200}
    db = tmp_path / "store.sqlite"

    def all_stored():
        # By id, not by count: an event stored though its sender was told 429 must not end the wait early.
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = {row[0] for row in conn.execute("SELECT event_id FROM events WHERE project_id = 1")}
        return stored >= set(accepted)

    wait_for(all_stored, timeout=120)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = [row[0] for row in conn.execute("SELECT event_id FROM events WHERE project_id = 1")]
        sdk_events = conn.execute("SELECT count(*) FROM events WHERE project_id = 2").fetchone()[0]
        sdk_refused = conn.execute(
            "SELECT coalesce(sum(quantity), 0) FROM outcomes WHERE project_id = 2 AND outcome = 2"
        ).fetchone()[0]
    assert sorted(stored) == sorted(accepted)
    # Each message the SDK sent before its 429 is accounted for; none of the 20 after it arrived.
    assert sdk_events + sdk_refused <= sent_by_sdk
    # Bounded: 4-slot channels of ~400 KB events, 6 connections, batches of 50.
    assert peak_rss_mb(server.proc.pid) < 400
