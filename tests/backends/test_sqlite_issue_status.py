"""Issue statuses in the SQLite store: ignore conditions, resolve in next release, the schema 13 → 14 migration."""

from __future__ import annotations

import sqlite3

import pytest

from minisentry.backends.sqlite import _SCHEMA_VERSION, SqliteStore
from minisentry.errors import BadRequest, TokenExists, NotFound
from minisentry.issue_query import parse_query
from minisentry.issue_status import StatusChange

from .test_sqlite_store import PROJECTS, event


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.seed_projects(PROJECTS)
        yield store


def release_event(n: int, release: str | None, received: float = 1000.0):
    data = {"event_id": f"{n:032x}", "platform": "python"}
    if release is not None:
        data["release"] = release
    return event(n, data=data, received=received, timestamp=1000.0 + n)


def only_issue(store: SqliteStore) -> dict:
    (issue,) = store.list_issues()
    return issue


def kinds(store: SqliteStore) -> list[str]:
    return [row["kind"] for row in store.activity_after(0)]


def test_ignored_for_two_more_events_unignores_on_the_third(store):
    store.write_batch([event(1)], [])
    issue_id = only_issue(store)["id"]
    assert store.change_issue_status([issue_id], StatusChange("ignored", ignore_count=2)) == [issue_id]
    store.write_batch([event(2), event(3)], [])
    assert only_issue(store)["status"] == "ignored"
    assert only_issue(store)["status_details"] == {"ignoreCount": 2, "ignoreCountBase": 1}
    store.write_batch([event(4)], [])
    issue = only_issue(store)
    assert (issue["status"], issue["status_details"], issue["count"]) == ("unresolved", {}, 4)
    assert kinds(store) == ["new", "unignored"]


def test_ignored_until_a_time_unignores_the_first_event_received_after_it(store):
    store.write_batch([release_event(1, "r1", received=1000.0)], [])
    issue_id = only_issue(store)["id"]
    store.change_issue_status([issue_id], StatusChange("ignored", ignore_until=2000.0))
    store.write_batch([release_event(2, "r1", received=1999.0)], [])
    assert only_issue(store)["status"] == "ignored"
    store.write_batch([release_event(3, "r1", received=2000.0)], [])
    assert only_issue(store)["status"] == "unresolved"
    assert kinds(store) == ["new", "unignored"]


def test_ignored_forever_stays_ignored(store):
    store.write_batch([event(1)], [])
    store.set_issue_status(only_issue(store)["id"], "ignored")
    store.write_batch([event(n) for n in range(2, 30)], [])
    assert only_issue(store)["status"] == "ignored" and kinds(store) == ["new"]


def test_resolved_in_next_release_reopens_only_for_another_release(store):
    store.write_batch([release_event(1, "r1")], [])
    issue_id = only_issue(store)["id"]
    store.change_issue_status([issue_id], StatusChange("resolved", in_next_release=True))
    assert only_issue(store)["status_details"] == {"inNextRelease": True, "resolvedRelease": "r1"}
    store.write_batch([release_event(2, "r1")], [])
    assert only_issue(store)["status"] == "resolved"
    store.write_batch([release_event(3, "r2")], [])
    assert only_issue(store)["status"] == "unresolved" and kinds(store) == ["new", "regression"]
    # Plain resolve: any event is a regression, the same release too.
    store.change_issue_status([issue_id], StatusChange("resolved"))
    store.write_batch([release_event(4, "r2")], [])
    assert only_issue(store)["status"] == "unresolved" and kinds(store) == ["new", "regression", "regression"]


def test_next_release_needs_a_release_and_changes_nothing_without_one(store):
    store.write_batch([release_event(1, None)], [])
    no_release = only_issue(store)["id"]
    store.write_batch([event(2, group_hash="hash-b", data={"event_id": "2", "release": "r1"})], [])
    with_release = next(i["id"] for i in store.list_issues() if i["id"] != no_release)
    with pytest.raises(BadRequest, match="no release"):
        store.change_issue_status([with_release, no_release], StatusChange("resolved", in_next_release=True))
    assert {i["status"] for i in store.list_issues()} == {"unresolved"}  # all or nothing
    assert store.change_issue_status([with_release], StatusChange("resolved", in_next_release=True)) == [with_release]


def test_changes_skip_unknown_issues_and_other_projects(store):
    store.write_batch([event(1), event(2, project_id=2, group_hash="hash-x")], [])
    ids = {i["project"]: i["id"] for i in store.list_issues()}
    assert store.change_issue_status([999, ids["other"], ids["demo"]], StatusChange("resolved"), project_id=1) \
        == [ids["demo"]]
    assert store.get_issue(ids["other"])["status"] == "unresolved"


def test_find_issues_by_status_level_release_environment_text_and_period(store):
    store.write_batch([
        event(1, data={"event_id": "1", "release": "r1", "environment": "prod"}, timestamp=1000.0),
        event(2, group_hash="hash-b", title="KeyError: x", data={"event_id": "2", "release": "r2"}, timestamp=5000.0),
    ], [])
    ids = {i["title"]: i["id"] for i in store.list_issues()}
    store.set_issue_status(ids["KeyError: x"], "ignored")

    def titles(query: str, now: float | None = None) -> set[str]:
        search = parse_query(query)
        if now is not None:
            search.period = 2000.0
        return {i["title"] for i in store.find_issues(1, search, now=now)}

    assert titles("") == {"ValueError: boom", "KeyError: x"}
    assert titles("is:ignored") == {"KeyError: x"}
    assert titles("is:unresolved is:unassigned") == {"ValueError: boom"}
    assert titles("release:r1") == {"ValueError: boom"}
    assert titles("!release:r1") == {"KeyError: x"}
    assert titles('environment:prod level:[error,fatal]') == {"ValueError: boom"}
    assert titles("level:warning") == set()
    assert titles("keyerror") == {"KeyError: x"}
    assert titles("", now=6000.0) == {"KeyError: x"}


def test_tokens_are_stored_by_hash_listed_and_revoked(store):
    store.create_api_token("ci", "h" * 64, ["event:read", "event:write"])
    with pytest.raises(TokenExists):
        store.create_api_token("ci", "i" * 64, ["event:read"])
    assert store.api_token_by_hash("h" * 64) == {"name": "ci", "scopes": ["event:read", "event:write"]}
    assert store.api_token_by_hash("x" * 64) is None
    (listed,) = store.list_api_tokens()
    assert listed["name"] == "ci" and listed["last_used"] is not None and "h" * 64 not in str(listed)
    store.revoke_api_token("ci")
    assert store.api_token_by_hash("h" * 64) is None
    with pytest.raises(NotFound):
        store.revoke_api_token("ci")


def test_a_schema_13_file_migrates_and_keeps_its_issues(tmp_path):
    path = tmp_path / "old.sqlite"
    with SqliteStore(path) as store:
        store.seed_projects(PROJECTS)
        store.write_batch([event(1)], [])
        store.set_issue_status(only_issue(store)["id"], "resolved")
    # Make it what schema 13 wrote: no status_details column, no api_tokens, no activity index.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX issue_activity_issue")
        conn.execute("ALTER TABLE issues DROP COLUMN status_details")
        conn.execute("DROP TABLE api_tokens")
        conn.execute("PRAGMA user_version = 13")
    with SqliteStore(path) as store:
        issue = only_issue(store)
        assert (issue["status"], issue["status_details"], issue["count"]) == ("resolved", {}, 1)
        store.write_batch([event(2)], [])
        assert only_issue(store)["status"] == "unresolved"
        store.create_api_token("t", "a" * 64, ["org:read"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA_VERSION
