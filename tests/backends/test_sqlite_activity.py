"""The issue activity log: new issues and regressions, written with their events, read by cursor."""

from __future__ import annotations

import pytest

from minisentry.backends import sqlite_activity
from minisentry.backends.sqlite import SqliteStore

from .test_sqlite_store import PROJECTS, event


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.seed_projects(PROJECTS)
        yield store


def kinds(store: SqliteStore, after: int = 0) -> list[tuple[str, str]]:
    return [(row["kind"], row["event_id"][-2:]) for row in store.activity_after(after)]


def test_a_new_issue_is_logged_once_and_later_events_are_not(store):
    store.write_batch([event(1), event(2), event(3, group_hash="hash-b")], [])
    store.write_batch([event(4)], [])
    assert kinds(store) == [("new", "01"), ("new", "03")]
    row = store.activity_after(0)[0]
    assert (row["slug"], row["title"], row["status"], row["count"]) == ("demo", "ValueError: boom", "unresolved", 3)


def test_a_redelivered_event_logs_nothing_again(store):
    store.write_batch([event(1)], [])
    store.write_batch([event(1)], [])
    assert kinds(store) == [("new", "01")]


def test_an_event_of_a_resolved_issue_logs_a_regression(store):
    store.write_batch([event(1)], [])
    issue_id = store.activity_after(0)[0]["issue_id"]
    store.set_issue_status(issue_id, "resolved")
    store.write_batch([event(2), event(3)], [])
    assert kinds(store) == [("new", "01"), ("regression", "02")]
    assert store.get_issue(issue_id)["status"] == "unresolved"


def test_events_without_a_group_log_nothing(store):
    store.write_batch([event(1, group_hash=None), event(2, item_type="transaction")], [])
    assert store.activity_after(0) == [] and store.last_activity_id() == 0


def test_reading_after_a_cursor_with_a_limit(store):
    store.write_batch([event(n, group_hash=f"h{n}") for n in range(1, 6)], [])
    first = store.activity_after(0, limit=2)
    assert [row["event_id"][-2:] for row in first] == ["01", "02"]
    assert [row["event_id"][-2:] for row in store.activity_after(first[-1]["id"])] == ["03", "04", "05"]


def test_cursors_only_move_forward_and_survive_reopening(tmp_path):
    path = tmp_path / "store.sqlite"
    with SqliteStore(path) as store:
        store.seed_projects(PROJECTS)
        assert store.activity_cursor("alerts") is None
        store.set_activity_cursor("alerts", 7)
        store.set_activity_cursor("alerts", 3)  # a late, slower worker must not move it back
    with SqliteStore(path) as store:
        assert store.activity_cursor("alerts") == 7
        assert store.activity_cursor("other") is None


def test_the_log_is_trimmed_to_its_limit(store, monkeypatch):
    # At the limit the oldest rows go; the newest ACTIVITY_KEEP stay readable.
    monkeypatch.setattr(sqlite_activity, "ACTIVITY_KEEP", 5)
    monkeypatch.setattr(sqlite_activity, "_PRUNE_EVERY", 4)
    store.write_batch([event(n, group_hash=f"h{n}") for n in range(1, 13)], [])
    ids = [row["id"] for row in store.activity_after(0)]
    # Trimmed when rows 4, 8 and 12 were written: row 12 keeps ids above 7.
    assert ids == list(range(8, 13))
