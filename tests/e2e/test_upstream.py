"""Stacked relays: two real ``minisentry serve`` processes, the real sentry-sdk sending to the edge."""

from __future__ import annotations

import json
import signal
import socket
import time
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest
import sentry_sdk

from minisentry.relayauth import generate_credentials

from ..conftest import KEY, base_config
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def stored_event_ids(db: Path) -> list[str]:
    """Every stored error event id, duplicates included (the test checks there are none)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT event_id FROM events")]
        except sqlite3.OperationalError:
            return []


def outcome_total(server, outcome: str, category: str = "error") -> int:
    rows = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
    return sum(r["quantity"] for r in rows if r["outcome"] == outcome and r["category"] == category)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def envelope(message: str) -> tuple[str, bytes]:
    event_id = uuid.uuid4().hex
    event = json.dumps({"event_id": event_id, "message": message, "level": "error", "platform": "python"})
    body = (json.dumps({"event_id": event_id}) + "\n" + json.dumps({"type": "event", "length": len(event)})
            + "\n" + event + "\n").encode()
    return event_id, body


def post(edge, body: bytes) -> httpx.Response:
    return httpx.post(f"{edge.url}/api/1/envelope/", content=body, timeout=10,
                      headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})


class Stack:
    """An upstream and an edge relay on their own folders, the edge's credentials trusted upstream."""

    def __init__(self, tmp_path: Path, server_factory, *, upstream_port: int = 0, quotas=None) -> None:
        self.tmp_path, self.factory = tmp_path, server_factory
        (tmp_path / "up").mkdir()
        (tmp_path / "edge").mkdir()
        self.credentials = generate_credentials()
        self.credentials_path = tmp_path / "edge" / "relay.json"
        self.credentials.save(self.credentials_path)
        self.up_raw = base_config(tmp_path / "up", relays=[{"id": self.credentials.relay_id,
                                                            "public_key": self.credentials.public_key}])
        if quotas:
            self.up_raw["quotas"] = quotas
        self.upstream_port = upstream_port
        self.upstream = self.start_upstream()
        self.edge = None

    @property
    def upstream_db(self) -> Path:
        return self.tmp_path / "up" / "store.sqlite"

    def start_upstream(self):
        return self.factory(self.up_raw, name="upstream.toml", args=("--port", str(self.upstream_port)))

    def start_edge(self, *, spool: bool = True, spool_max_bytes: int = 64 * 1024 * 1024, backend: str = "trio"):
        raw = base_config(self.tmp_path / "edge", projects=[], server={"backend": backend},
                          upstream={"credentials": str(self.credentials_path), "retry_initial": 0.05,
                                    "retry_max": 0.5, "max_retries": 2, "project_ttl": 30.0})
        if spool:
            raw["spool"] = {"path": str(self.tmp_path / "edge" / "spool.sqlite"), "max_bytes": spool_max_bytes}
        # The URL comes from the command line; the rest of [upstream] from the file.
        self.edge = self.factory(raw, name="edge.toml",
                                 args=("--port", "0", "--upstream", f"http://127.0.0.1:{self.upstream.port}"))
        return self.edge


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_events_sent_to_the_edge_are_stored_once_upstream(tmp_path, server_factory, backend):
    stack = Stack(tmp_path, server_factory)
    edge = stack.start_edge(backend=backend)
    init_sdk(edge.dsn())
    sent = [sentry_sdk.capture_message(f"through the edge {index}", level="error") for index in range(5)]
    close_sdk()
    wait_for(lambda: len(stored_event_ids(stack.upstream_db)) >= 5, timeout=30)
    assert sorted(stored_event_ids(stack.upstream_db)) == sorted(sent)
    # The upstream grouped them as usual; the edge stored nothing itself.
    issues = cli(stack.upstream.config_path, "issues", "--json")
    assert any("through the edge" in issue["title"] for issue in json.loads(issues.stdout))
    assert stored_event_ids(tmp_path / "edge" / "store.sqlite") == []
    # The edge knew the key only from the upstream's project config; a key unknown there is refused.
    response = httpx.post(f"{edge.url}/api/1/envelope/", content=envelope("x")[1],
                          headers={"X-Sentry-Auth": "Sentry sentry_key=" + "ab" * 16})
    assert response.status_code == 403 and "unknown public key" in response.headers["x-sentry-error"]
    assert edge.stop()[0] == 0


def test_upstream_outage_spools_at_the_edge_and_nothing_answered_200_is_lost(tmp_path, server_factory):
    stack = Stack(tmp_path, server_factory, upstream_port=free_port())
    edge = stack.start_edge()
    init_sdk(edge.dsn())
    accepted = [sentry_sdk.capture_message("before the outage", level="error")]
    sentry_sdk.flush(timeout=10)
    wait_for(lambda: len(stored_event_ids(stack.upstream_db)) == 1, timeout=30)

    assert stack.upstream.stop()[0] == 0  # outage
    for index in range(5):
        accepted.append(sentry_sdk.capture_message(f"during the outage {index}", level="error"))
    sentry_sdk.flush(timeout=10)
    for index in range(5):
        event_id, body = envelope(f"raw during the outage {index}")
        assert post(edge, body).status_code == 200  # the edge answers 200 and keeps it
        accepted.append(event_id)
    close_sdk()
    # The edge itself restarts during the outage: what it answered 200 is in its spool.
    assert edge.stop()[0] == 0
    edge = stack.start_edge()
    metrics = httpx.get(f"{edge.url}/metrics").text
    assert "minisentry_spool_messages" in metrics and "minisentry_spool_messages 0" not in metrics
    # A fresh edge has no project configs yet and cannot fetch any: it refuses, retry later.
    _, body = envelope("unverifiable key during the outage")
    refused = post(edge, body)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1

    stack.upstream = stack.start_upstream()  # the upstream comes back on the same port
    event_id, body = envelope("after the upstream came back")
    assert post(edge, body).status_code == 200
    accepted.append(event_id)
    wait_for(lambda: len(stored_event_ids(stack.upstream_db)) >= len(accepted), timeout=60)
    ids = stored_event_ids(stack.upstream_db)
    assert sorted(ids) == sorted(accepted)  # every one, exactly once
    wait_for(lambda: "minisentry_spool_messages 0" in httpx.get(f"{edge.url}/metrics").text)


def test_a_full_spool_during_an_outage_is_answered_429_and_the_rest_arrives(tmp_path, server_factory):
    stack = Stack(tmp_path, server_factory, upstream_port=free_port())
    edge = stack.start_edge(spool_max_bytes=2000)  # room for a few small envelopes
    event_id, body = envelope("warms the project config cache")
    assert post(edge, body).status_code == 200
    accepted = [event_id]
    wait_for(lambda: len(stored_event_ids(stack.upstream_db)) == 1, timeout=30)
    assert stack.upstream.stop()[0] == 0
    refused = None
    for index in range(100):
        event_id, body = envelope(f"outage {index}")
        response = post(edge, body)
        if response.status_code != 200:
            refused = response
            break
        accepted.append(event_id)
    # At the spool's limit the edge says "later", as a full pipeline does; what it took, it keeps.
    assert refused is not None and refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert len(accepted) > 2
    stack.upstream = stack.start_upstream()
    wait_for(lambda: len(stored_event_ids(stack.upstream_db)) >= len(accepted), timeout=60)
    assert sorted(stored_event_ids(stack.upstream_db)) == sorted(accepted)


def test_upstream_429_is_answered_by_the_edge_with_the_same_rate_limits(tmp_path, server_factory):
    quotas = [{"id": "errors", "categories": ["error"], "scope": "project", "limit": 2, "window": 3600,
               "reason_code": "too_many_errors"}]
    stack = Stack(tmp_path, server_factory, quotas=quotas)
    edge = stack.start_edge()
    init_sdk(edge.dsn())
    for index in range(3):
        sentry_sdk.capture_message(f"error {index}", level="error")
        sentry_sdk.flush(timeout=10)
    # The third went over the upstream's quota: the upstream answered the edge 429 and counted it.
    wait_for(lambda: outcome_total(stack.upstream, "rate_limited") == 1, timeout=30)
    sentry_sdk.capture_message("refused at the edge", level="error")
    close_sdk()

    _, body = envelope("raw, refused at the edge")
    response = post(edge, body)
    assert response.status_code == 429
    limits = response.headers["x-sentry-rate-limits"]
    retry_after, categories, scope, reason = limits.split(":")[:4]
    assert (categories, scope, reason) == ("error", "project", "too_many_errors")
    assert 0 < int(retry_after) <= 3600 and int(response.headers["retry-after"]) >= 1

    # Exactly one outcome per item: 2 accepted upstream, 1 refused upstream, 2 refused by the edge.
    wait_for(lambda: outcome_total(edge, "rate_limited") == 2, timeout=30)
    assert outcome_total(stack.upstream, "accepted") == 2
    assert outcome_total(stack.upstream, "rate_limited") == 1
    assert len(stored_event_ids(stack.upstream_db)) == 2


@pytest.mark.parametrize("case, status, error", [
    ("unsigned", 401, "missing X-Sentry-Relay-Signature"),
    ("wrongly signed", 401, "does not match"),
    ("stale", 401, "stale"),
    ("unknown relay", 403, "unknown relay"),
    ("signed", 200, None),
])
def test_upstream_refuses_requests_not_signed_by_a_trusted_relay(tmp_path, server_factory, case, status, error):
    stack = Stack(tmp_path, server_factory)
    body = json.dumps({"publicKeys": [KEY, "ab" * 16]}).encode()
    headers = stack.credentials.sign(body)
    if case == "unsigned":
        del headers["X-Sentry-Relay-Signature"]
    elif case == "wrongly signed":
        headers = stack.credentials.sign(b"another body")
    elif case == "stale":
        headers = stack.credentials.sign(body, now=time.time() - 301)  # server.relay_signature_max_age = 300
    elif case == "unknown relay":
        headers = generate_credentials().sign(body)
    response = httpx.post(f"{stack.upstream.url}/api/0/relays/projectconfigs/", content=body, headers=headers)
    assert response.status_code == status
    if error is not None:
        assert error in response.headers["x-sentry-error"]
    else:
        configs = response.json()["configs"]
        assert configs[KEY]["projectId"] == 1 and configs[KEY]["publicKeys"][0]["isEnabled"] is True
        assert configs["ab" * 16] is None
    # Forwarded envelopes are checked the same way, and still need a valid project key.
    _, envelope_body = envelope("forwarded")
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"}
    bad = httpx.post(f"{stack.upstream.url}/api/1/envelope/", content=envelope_body,
                     headers={**auth, **stack.credentials.sign(b"not this body")})
    assert bad.status_code == 401
    wrong_key = httpx.post(f"{stack.upstream.url}/api/1/envelope/", content=envelope_body,
                           headers={"X-Sentry-Auth": "Sentry sentry_key=" + "ab" * 16,
                                    **stack.credentials.sign(envelope_body)})
    assert wrong_key.status_code == 403 and "unknown public key" in wrong_key.headers["x-sentry-error"]
