"""The monitor-failure log: failed check-ins logged with their status change, bounded, read by cursor."""

from __future__ import annotations

import uuid

import pytest

from minisentry.backends import sqlite_alerts
from minisentry.backends.sqlite import SqliteStore
from minisentry.monitors import CheckIn

from .test_sqlite_store import PROJECTS

CONFIG = {"schedule": {"type": "interval", "value": 10, "unit": "minute"}, "timezone": "UTC", "checkin_margin": 1,
          "max_runtime": 5}


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.seed_projects(PROJECTS)
        yield store


def statuses(store: SqliteStore, after: int = 0) -> list[tuple[str, str]]:
    return [(row["monitor_slug"], row["status"]) for row in store.monitor_failures_after(after)]


def test_error_missed_and_timeout_are_logged_ok_and_in_progress_are_not(store):
    running = uuid.uuid4().hex
    store.record_check_ins([CheckIn(1, running, "sync", "in_progress", 0.0, config=CONFIG),
                            CheckIn(1, uuid.uuid4().hex, "report", "ok", 1.0)])
    assert statuses(store) == [] and store.last_monitor_failure_id() == 0
    assert store.detect_missed(11 * 60 + 1) == 2  # the expected check-in is missed, the running one timed out
    store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "backup", "error", 700.0)])
    assert statuses(store) == [("sync", "missed"), ("sync", "timeout"), ("backup", "error")]
    row = store.monitor_failures_after(0)[0]
    assert row["slug"] == "demo" and '"interval"' in row["schedule"] and row["created"] == 11 * 60 + 1


def test_an_in_progress_check_in_closed_with_error_is_logged_once(store):
    check_in_id = uuid.uuid4().hex
    store.record_check_ins([CheckIn(1, check_in_id, "sync", "in_progress", 0.0)])
    store.record_check_ins([CheckIn(1, check_in_id, "sync", "error", 5.0)])
    store.record_check_ins([CheckIn(1, check_in_id, "sync", "error", 6.0)])  # redelivered: no change
    assert statuses(store) == [("sync", "error")]
    assert store.monitor_failures_after(0)[0]["check_in_id"] == check_in_id


def test_a_rolled_back_check_in_logs_nothing(store):
    bad = CheckIn(1, uuid.uuid4().hex, "sync", "error", 0.0, config={"schedule": "not a schedule"})
    with pytest.raises(Exception):
        store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "other", "error", 0.0), bad])
    assert statuses(store) == []


def test_the_log_is_bounded(store, monkeypatch, tmp_path):
    keep = sqlite_alerts.MONITOR_FAILURES_KEEP
    store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "sync", "error", float(n)) for n in range(keep + 5)])
    rows = store._run(lambda c: c.execute("SELECT count(*), min(id), max(id) FROM monitor_failures").fetchone())
    assert tuple(rows) == (keep, 6, keep + 5)
    assert [row["id"] for row in store.monitor_failures_after(keep + 3)] == [keep + 4, keep + 5]
