"""End to end: the real server process, the real sentry-sdk over HTTP, the real CLI reading SQLite."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..conftest import KEY, base_config

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minisentry", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60)


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def init_sdk(dsn: str, **options) -> None:
    options = {"release": "shop@1.0", "environment": "test", **options}
    sentry_sdk.init(dsn=dsn, traces_sample_rate=1.0, default_integrations=False, auto_enabling_integrations=False,
                    **options)
    # Scopes outlive init(): start each test without an earlier test's transaction name or tags.
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


def close_sdk() -> None:
    sentry_sdk.flush(timeout=10)
    sentry_sdk.get_client().close()


def checkout(cart):
    return cart["total"] / cart["items"]


def parse_price(text):
    return int(text)


@pytest.mark.parametrize("compression", ["br", "gzip"])
def test_sdk_events_grouped_like_sentry(tmp_path, server_factory, compression):
    server = server_factory()
    init_sdk(server.dsn(), _experiments={"transport_compression_algo": compression})
    try:
        for _ in range(3):
            try:
                checkout({"total": 10, "items": 0})
            except ZeroDivisionError:
                sentry_sdk.capture_exception()
        for text in ("abc", "12x", "?"):
            try:
                parse_price(text)
            except ValueError:
                sentry_sdk.capture_exception()
        sentry_sdk.capture_message("payment provider timed out")
        sentry_sdk.capture_message("payment provider timed out")
        with sentry_sdk.start_transaction(name="/checkout", op="http.server"):
            with sentry_sdk.start_span(op="db", name="SELECT 1"):
                pass
    finally:
        close_sdk()
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db, "SELECT count(*) FROM events") == 8 and count(db, "SELECT count(*) FROM transactions") == 1)

    result = cli(server.config_path, "issues", "--json")
    assert result.returncode == 0, result.stderr
    issues = json.loads(result.stdout)
    for issue in issues:
        assert {"id", "project", "title", "culprit", "level", "count", "first_seen", "last_seen"} <= set(issue)
    by_title = {issue["title"].split(":")[0]: issue for issue in issues}
    assert len(issues) == 3
    # Different values from the same code path are one issue (the value does not contribute).
    assert by_title["ZeroDivisionError"]["count"] == 3
    assert by_title["ValueError"]["count"] == 3
    assert by_title["ValueError"]["culprit"].endswith("in parse_price")
    assert by_title["payment provider timed out"]["count"] == 2
    assert by_title["payment provider timed out"]["level"] == "info"
    assert all(issue["project"] == "demo" for issue in issues)

    tx = cli(server.config_path, "events", "show", "--json",
             _first(db, "SELECT event_id FROM transactions"))
    assert tx.returncode == 0, tx.stderr
    assert json.loads(tx.stdout)["data"]["transaction"] == "/checkout"


def _first(db: Path, sql: str) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchone()[0]


def test_fresh_config_serve_then_issues_shows_first_error(tmp_path):
    """The repository's default config, copied as a user would use it, works end to end."""
    config = tmp_path / "minisentry.toml"
    shutil.copy(REPO / "minisentry.toml", config)
    proc = subprocess.Popen([sys.executable, "-m", "minisentry", "--config", str(config), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        dsn = None
        while dsn is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("DSN for project demo: "):
                dsn = line.split(": ", 1)[1].strip()
        init_sdk(dsn)
        try:
            1 / 0
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
        close_sdk()
        wait_for(lambda: "ZeroDivisionError" in cli(config, "issues").stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "data" / "minisentry.sqlite").exists()


def test_sigterm_during_load_loses_no_accepted_event(tmp_path, server_factory):
    server = server_factory(base_config(tmp_path, stages={"drain_timeout": 20.0}))
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender():
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(2000):
                if stop.is_set():
                    return
                event_id = uuid.uuid4().hex
                body = (json.dumps({"event_id": event_id}) + "\n" + '{"type":"event"}\n'
                        + json.dumps({"event_id": event_id, "message": "load", "platform": "python"}) + "\n")
                try:
                    response = client.post("/api/1/envelope/", content=body,
                                           headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
                except httpx.TransportError:
                    return  # the server closed the connection: shutting down
                if response.status_code == 200:
                    with lock:
                        accepted.append(event_id)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(accepted) >= 300, timeout=60)
    code, out, err = server.stop(signal.SIGTERM, timeout=60)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert code == 0, err[-2000:]
    assert "draining" in out
    with sqlite3.connect(tmp_path / "store.sqlite") as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    missing = set(accepted) - stored
    assert not missing, f"{len(missing)} of {len(accepted)} accepted events were lost"
    assert len(stored) == len(set(stored))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from ..conftest import ServerProcess, write_config

    tmp = tmp_path_factory.mktemp("fuzz")
    server = ServerProcess(write_config(tmp / "minisentry.toml", base_config(tmp)))
    yield server
    server.stop()


VALID = (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"event","length":17}\n'
         b'{"message":"hey"}\n{"type":"attachment","length":3,"filename":"a"}\nabc\n')


@st.composite
def mutated_envelopes(draw):
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=2048), mutated_envelopes()),
       encoding=st.sampled_from([None, "gzip", "br", "zstd", "deflate"]))
def test_fuzz_any_body_gets_200_400_or_413_never_500(fuzz_server, body, encoding):
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={KEY}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    response = httpx.post(f"{fuzz_server.url}/api/1/envelope/", content=body, headers=headers, timeout=10)
    assert response.status_code in (200, 400, 413), response.text
    assert fuzz_server.proc.poll() is None
