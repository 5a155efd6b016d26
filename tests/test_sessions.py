"""Release health: session parsing, aggregation bounds, and the real sentry-sdk's sessions end to end."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
import sys

import pytest
import sentry_sdk
from hypothesis import given
from hypothesis import strategies as st

from minisentry.sessions import SessionAggregator, SessionCounts, SessionError, parse_session, parse_sessions

from .e2e.test_sdk import close_sdk, init_sdk, wait_for

ATTRS = {"release": "shop@2.0", "environment": "prod"}


def test_session_updates_count_like_sentry():
    start = {"sid": "a", "init": True, "started": "2026-11-26T10:00:30Z", "status": "ok", "attrs": ATTRS}
    minute = int(datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc).timestamp())
    assert parse_session(1, start) == SessionCounts(1, "shop@2.0", "prod", minute, started=1)
    crashed = parse_session(1, {**start, "init": False, "status": "crashed", "errors": 1})
    assert (crashed.started, crashed.crashed, crashed.errored) == (0, 1, 0)
    errored = parse_session(1, {**start, "init": False, "status": "exited", "errors": 2})
    assert (errored.errored, errored.exited) == (1, 0)
    clean = parse_session(1, {**start, "init": False, "status": "exited"})
    assert (clean.exited, clean.errored) == (1, 0)


def test_aggregates_count_every_session_as_started():
    rows = parse_sessions(1, {"attrs": ATTRS, "aggregates": [
        {"started": "2026-11-26T10:00:00Z", "exited": 5, "errored": 2},
        {"started": "2026-11-26T10:01:00Z", "crashed": 1, "abnormal": 1}]})
    assert [(r.started, r.exited, r.errored, r.crashed, r.abnormal) for r in rows] == [(7, 5, 2, 0, 0), (2, 0, 0, 1, 1)]


@pytest.mark.parametrize("payload, message", [
    ([], "not a JSON object"),
    ({"started": "2026-11-26T10:00:00Z"}, "attrs missing"),
    ({"attrs": {}, "started": "2026-11-26T10:00:00Z"}, "release"),
    ({"attrs": ATTRS, "started": "yesterday"}, "RFC 3339"),
    ({"attrs": ATTRS, "started": "2026-11-26T10:00:00Z", "status": "weird"}, "unknown session status"),
    ({"attrs": ATTRS, "started": "2026-11-26T10:00:00Z", "errors": -1}, "errors"),
])
def test_bad_sessions_say_why(payload, message):
    with pytest.raises(SessionError, match=message):
        parse_session(1, payload)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                    max_leaves=15))
def test_fuzz_only_session_errors(payload):
    for parse in (parse_session, parse_sessions):
        try:
            parse(1, payload)
        except SessionError:
            pass


def test_aggregator_bound():
    agg = SessionAggregator(max_keys=1)
    assert agg.add(SessionCounts(1, "a", "prod", 0, started=1))
    assert agg.add(SessionCounts(1, "a", "prod", 0, started=2))
    assert not agg.add(SessionCounts(1, "b", "prod", 0, started=1))
    assert agg.dropped == 1
    (row,) = agg.take()
    assert row.started == 3 and len(agg) == 0


def test_real_sdk_sessions_reach_release_health(tmp_path, server_factory):
    server = server_factory()
    init_sdk(server.dsn(), auto_session_tracking=False)
    scope = sentry_sdk.get_isolation_scope()
    for crash in (False, False, True):
        scope.start_session(session_mode="application")
        if crash:
            try:
                1 / 0
            except ZeroDivisionError:
                sentry_sdk.capture_exception()
            scope._session.update(status="crashed")
        scope.end_session()
    close_sdk()

    def health():
        result = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "releases",
                                 "--json"], capture_output=True, text=True, timeout=60)
        rows = json.loads(result.stdout or "[]")
        return rows if rows and rows[0]["started"] == 3 and rows[0]["crashed"] == 1 else None

    (row,) = wait_for(health, timeout=30)
    assert row["release"] == "shop@1.0" and row["environment"] == "test"
    assert row["crash_free_rate"] == pytest.approx(2 / 3, rel=1e-4)
    text = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "releases"],
                          capture_output=True, text=True, timeout=60).stdout
    assert "crash-free 66.67%" in text
