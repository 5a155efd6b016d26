"""Inbound filters on a real server with the real sentry-sdk: dropped with Sentry's reason keys."""

from __future__ import annotations

import json

import pytest
import sentry_sdk

from ..conftest import base_config
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def test_filters_drop_with_reasons_and_keep_the_rest(tmp_path, server_factory):
    raw = base_config(tmp_path, filters={"error_messages": ["*ConnectionResetError*"], "releases": ["*-dev"]})
    server = server_factory(raw)
    init_sdk(server.dsn())
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        sentry_sdk.capture_exception()
    try:
        raise ValueError("kept")
    except ValueError:
        kept = sentry_sdk.capture_exception()
    with sentry_sdk.start_transaction(name="/healthz", op="http.server"):
        pass
    with sentry_sdk.start_transaction(name="/orders", op="http.server"):
        pass
    close_sdk()
    init_sdk(server.dsn(), release="shop-dev")
    sentry_sdk.capture_message("from a dev build", level="error")
    close_sdk()

    def outcomes():
        rows = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
        filtered = {(r["reason"], r["category"]): r["quantity"] for r in rows if r["outcome"] == "filtered"}
        accepted = {r["category"]: r["quantity"] for r in rows if r["outcome"] == "accepted"}
        return (filtered, accepted) if len(filtered) == 3 and accepted.get("transaction") else None

    filtered, accepted = wait_for(outcomes, timeout=30)
    assert filtered == {("error-message", "error"): 1, ("filtered-transaction", "transaction"): 1,
                        ("release-version", "error"): 1}
    assert accepted == {"error": 1, "transaction": 1}
    issues = json.loads(cli(server.config_path, "issues", "--json").stdout)
    assert [issue["title"] for issue in issues] == ["ValueError: kept"]
    assert json.loads(cli(server.config_path, "events", "show", "--json", kept).stdout)["event_id"] == kept
