"""Every stage in its own OS process on the real Kafka and Redis; workers are killed with SIGKILL mid-stream.

relay, ingest, symbolicate, two process workers and the store run as separate ``minisentry serve
--role ...`` processes sharing one config (Kafka channels, Redis payloads and fan-out, one SQLite
store). 10,000 envelopes recorded from the real ``sentry-sdk`` (five different errors, each copy
with its own event id) are POSTed to the relay; a third of the way in, one process worker, the store
and the ingest stage are killed with SIGKILL and restarted. Every event answered 200 must be stored
exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from tests import services
from tests.conftest import KEY, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.services]

TOTAL = 10_000
SENDERS = 8


class _Recorder(Transport):
    """Keeps each envelope exactly as the SDK serialized it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[bytes] = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope.serialize())


def _recorded_envelopes() -> list[bytes]:
    """Five different real SDK error envelopes (five issues)."""
    recorder = _Recorder()
    client = sentry_sdk.Client(dsn=f"http://{KEY}@127.0.0.1/1", transport=recorder, default_integrations=False,
                               auto_enabling_integrations=False)
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        for kind in (ValueError, KeyError, TypeError, ZeroDivisionError, LookupError):
            try:
                raise kind(f"checkout failed: {kind.__name__}")
            except Exception as exc:
                sentry_sdk.capture_exception(exc)
    client.close()
    assert len(recorder.envelopes) == 5
    return recorder.envelopes


def _with_event_id(envelope: bytes, event_id: str) -> bytes:
    old = json.loads(envelope.split(b"\n", 1)[0])["event_id"].encode()
    return envelope.replace(old, event_id.encode())  # same length: item lengths stay right


class _Role:
    """One ``minisentry serve --role ...`` process, its output in a file (no pipe to fill up)."""

    def __init__(self, config: Path, role: str, log_dir: Path, index: int = 0) -> None:
        self.config, self.role = config, role
        self.log = log_dir / f"{role}-{index}.log"
        self.start()

    def start(self) -> None:
        self.output = self.log.open("a")
        args = [sys.executable, "-m", "minisentry", "--config", str(self.config), "serve", "--role", self.role]
        if self.role in ("relay", "store"):
            args += ["--port", "0"]  # the store: only its probes and /metrics
        self.proc = subprocess.Popen(args, stdout=self.output, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port = self._wait_ready()

    def _wait_ready(self) -> int | None:
        deadline = time.monotonic() + 60
        starts = self.log.read_text().count("minisentry roles:")
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited with {self.proc.returncode}:\n{text[-3000:]}")
            if text.count("minisentry roles:") > starts:
                if self.role not in ("relay", "store"):
                    return None
                ports = re.findall(r"(?:listening on|probes and /metrics on) http://[^:]+:(\d+)", text)
                if len(ports) > starts:
                    return int(ports[-1])
            time.sleep(0.1)
        raise RuntimeError(f"{self.role} did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.output.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.output.close()


def _stored(db: Path, event_ids: set[str]) -> tuple[int, int]:
    """(rows for these ids, distinct ids among them)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = [row[0] for row in conn.execute("SELECT event_id FROM events WHERE project_id = 1")]
    finally:
        conn.close()
    mine = [event_id for event_id in rows if event_id in event_ids]
    return len(mine), len(set(mine))


def test_separate_processes_on_kafka_survive_sigkill_and_store_each_accepted_event_once(tmp_path):
    services.require_module("confluent_kafka")
    services.require_module("redis")
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "minisentry.db"
    config = write_config(tmp_path / "minisentry.toml", {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(db)},
        "channels": {"backend": "kafka", "capacity": 512},
        "kafka": {"bootstrap_servers": services.kafka_bootstrap(), "topic_prefix": prefix, "group_prefix": prefix,
                  "partitions": 4, "commit_interval": 0.2, "session_timeout": 6.0},
        "redis": {"url": services.redis_url(), "prefix": prefix},
        "backends": {"payloads": "redis", "fanout": "redis", "quota_counters": "redis"},
        "stages": {"drain_timeout": 5.0, "process_workers": 0},
        "scrubbing": {"enabled": False},
        "projects": [{"id": 1, "slug": "shop", "keys": [KEY]}],
    })
    roles: list[_Role] = []
    try:
        for role in ("store", "process", "process", "symbolicate", "ingest", "relay"):
            roles.append(_Role(config, role, tmp_path, index=len(roles)))
        store, process_one, ingest, relay = roles[0], roles[1], roles[-2], roles[-1]
        # A worker without the relay role answers probes and /metrics, and nothing else.
        ops = f"http://127.0.0.1:{store.port}"
        assert httpx.get(f"{ops}/api/relay/healthcheck/ready/").json() == {"is_healthy": True, "reasons": []}
        assert 'minisentry_channel_in_flight{channel="store"}' in httpx.get(f"{ops}/metrics").text
        refused = httpx.post(f"{ops}/api/1/envelope/", content=b"{}")
        assert refused.status_code == 404 and "runs store, events go to a relay" in refused.json()["detail"]
        url = f"http://127.0.0.1:{relay.port}/api/1/envelope/"
        headers = {"Content-Type": "application/x-sentry-envelope",
                   "X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2"}
        recorded = _recorded_envelopes()
        event_ids = [uuid.uuid4().hex for _ in range(TOTAL)]
        accepted: set[str] = set()
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        sent = [0]

        def send(chunk: list[str]) -> None:
            with httpx.Client(timeout=30) as client:
                for event_id in chunk:
                    body = _with_event_id(recorded[int(event_id[:4], 16) % len(recorded)], event_id)
                    status = client.post(url, content=body, headers=headers).status_code
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1
                        sent[0] += 1
                        if status == 200:
                            accepted.add(event_id)

        with ThreadPoolExecutor(SENDERS) as pool:
            futures = [pool.submit(send, event_ids[i::SENDERS]) for i in range(SENDERS)]
            while sent[0] < TOTAL // 3:
                time.sleep(0.05)
            # The crash: a processing worker, the store and the ingest stage die without any chance to
            # clean up (the only ingest process: its partitions wait for it to come back).
            crashed = [process_one, store, ingest]
            for role in crashed:
                role.kill()
            time.sleep(1.0)
            for role in crashed:
                role.start()
            for future in futures:
                future.result()

        assert len(accepted) >= TOTAL * 0.95, statuses  # 429s are allowed under pressure, not losses
        deadline = time.monotonic() + 300
        while True:
            rows, distinct = _stored(db, accepted)
            if distinct == len(accepted) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert distinct == len(accepted), f"{len(accepted) - distinct} accepted events were never stored"
        assert rows == distinct, "an event was stored twice"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            issues, times_seen = conn.execute("SELECT count(*), sum(count) FROM issues WHERE project_id = 1").fetchone()
        finally:
            conn.close()
        assert issues == 5
        assert times_seen == distinct, "redelivered events were counted again on their issue"
    finally:
        for role in reversed(roles):
            role.stop()
