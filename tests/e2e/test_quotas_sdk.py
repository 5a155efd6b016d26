"""Quotas against the real sentry-sdk: 429 with Sentry's headers, the SDK backs off per category."""

from __future__ import annotations

import json

import pytest
import sentry_sdk

from ..conftest import base_config
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def outcomes(server) -> list[dict]:
    return json.loads(cli(server.config_path, "outcomes", "--json").stdout)


def total(rows, outcome, category) -> int:
    return sum(r["quantity"] for r in rows if r["outcome"] == outcome and r["category"] == category)


def test_sdk_stops_sending_errors_after_a_quota_429_transactions_still_flow(tmp_path, server_factory):
    raw = base_config(tmp_path)
    raw["quotas"] = [{"id": "errors-per-minute", "categories": ["error"], "scope": "project", "limit": 3,
                      "window": 3600, "reason_code": "too_many_errors"}]
    server = server_factory(raw)
    init_sdk(server.dsn())
    transport = sentry_sdk.get_client().transport
    for index in range(3):
        sentry_sdk.capture_message(f"fine {index}", level="error")
    sentry_sdk.flush(timeout=5)
    sentry_sdk.capture_message("over the quota", level="error")
    sentry_sdk.flush(timeout=5)
    # The 429 carried X-Sentry-Rate-Limits for errors only: the SDK now holds back errors alone.
    assert "error" in transport._disabled_until and None not in transport._disabled_until
    for index in range(10):
        sentry_sdk.capture_message(f"held back {index}", level="error")
    with sentry_sdk.start_transaction(name="/still-sent"):
        pass
    close_sdk()

    wait_for(lambda: total(outcomes(server), "accepted", "transaction") == 1, timeout=30)
    rows = outcomes(server)
    assert total(rows, "accepted", "error") == 3
    # Exactly one error reached the server over quota: the SDK sent none of the ten after it.
    assert total(rows, "rate_limited", "error") == 1
    assert {r["reason"] for r in rows if r["outcome"] == "rate_limited"} == {"too_many_errors"}


def test_blocked_category_is_dropped_from_a_mixed_envelope_and_announced(tmp_path, server_factory):
    raw = base_config(tmp_path)
    raw["quotas"] = [{"id": "no-attachments", "categories": ["attachment"], "limit": 0, "reason_code": "disabled"}]
    server = server_factory(raw)
    init_sdk(server.dsn())
    sentry_sdk.get_isolation_scope().add_attachment(bytes=b"log line\n" * 100, filename="app.log")
    event_id = sentry_sdk.capture_message("with an attachment", level="error")
    close_sdk()
    wait_for(lambda: total(outcomes(server), "accepted", "error") == 1, timeout=30)
    rows = outcomes(server)
    assert total(rows, "rate_limited", "attachment") == 900  # attachments count in bytes
    stored = json.loads(cli(server.config_path, "events", "show", "--json", event_id).stdout)
    assert stored["data"]["logentry"]["formatted"] == "with an attachment"
