"""Two real ``minisentry serve`` processes sharing the real Redis: one quota, instant key changes.

Each server has its own store file (two relays); the quota counters and the change fan-out are in
Redis. Skipped locally without Redis, failing under CI=true.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
import sentry_sdk

from tests import services

from ..conftest import KEY, base_config
from .test_sdk import cli, close_sdk, init_sdk

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.fixture
def redis_section():
    services.require_module("redis")
    return {"url": services.redis_url(), "prefix": f"minisentry-e2e-{uuid.uuid4().hex[:12]}"}


def relay_config(tmp_path, name: str, redis: dict, **sections) -> dict:
    raw = base_config(tmp_path, storage={"path": str(tmp_path / f"{name}.sqlite")}, redis=redis, **sections)
    return raw


def test_sdks_on_two_relays_share_one_quota_then_both_answer_429(tmp_path, server_factory, redis_section):
    quota = {"id": "errors-per-hour", "categories": ["error"], "scope": "project", "limit": 4, "window": 3600,
             "reason_code": "too_many_errors"}
    servers = [server_factory(relay_config(tmp_path, name, redis_section, quotas=[quota],
                                           backends={"quota_counters": "redis"}), name=f"{name}.toml")
               for name in ("one", "two")]
    # Two errors through a real SDK on each relay: together exactly the limit.
    for server in servers:
        init_sdk(server.dsn())
        for index in range(2):
            sentry_sdk.capture_message(f"fine {index}", level="error")
        close_sdk()
    # Then both relays refuse the next error with Sentry's 429 and rate-limit header.
    for server in servers:
        body = (b'{"event_id":"%s"}\n{"type":"event"}\n{"message":"over","level":"error"}\n'
                % uuid.uuid4().hex.encode())
        response = httpx.post(f"{server.url}/api/1/envelope/", content=body, timeout=10, headers={
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={KEY}, sentry_client=test/1.0"})
        assert response.status_code == 429
        assert re.fullmatch(r"\d+:error:project:too_many_errors", response.headers["X-Sentry-Rate-Limits"])
    accepted = [_total(server, "accepted") for server in servers]
    assert accepted == [2, 2]


def _total(server, outcome: str) -> int:
    import json

    deadline = time.monotonic() + 30
    while True:
        rows = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
        total = sum(r["quantity"] for r in rows if r["outcome"] == outcome and r["category"] == "error")
        if total == 2 or time.monotonic() > deadline:
            return total
        time.sleep(0.2)


def test_a_key_disabled_with_the_cli_is_refused_by_a_running_server_within_a_second(
        tmp_path, server_factory, redis_section):
    # The server polls its store only every 30 s: only the Redis fan-out explains a fast change.
    server = server_factory(relay_config(tmp_path, "only", redis_section,
                                         backends={"fanout": "redis", "poll_interval": 30.0}))
    auth = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={KEY}, sentry_client=test/1.0"}
    body = b'{}\n{"type":"event"}\n{"message":"hi","level":"error"}\n'
    assert httpx.post(f"{server.url}/api/1/envelope/", content=body, headers=auth, timeout=10).status_code == 200
    result = cli(server.config_path, "projects", "disable-key", KEY)
    assert result.returncode == 0, result.stderr
    published = time.monotonic()
    while httpx.post(f"{server.url}/api/1/envelope/", content=body, headers=auth, timeout=10).status_code != 403:
        assert time.monotonic() - published < 1.0, "the running server did not follow within a second"
        time.sleep(0.02)
