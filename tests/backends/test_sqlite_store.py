"""SqliteStore on a temp file: projects, idempotent batches, issue grouping, outcomes, reads, errors."""

from __future__ import annotations

import re
import sqlite3

import pytest

from minisentry.backends.sqlite import SqliteStore
from minisentry.config import ProjectConfig
from minisentry.errors import NotFound, StorageError
from minisentry.messages import ProcessedEvent
from minisentry.outcomes import Outcome, OutcomeRow

KEY_1 = "0123456789abcdef0123456789abcdef"
KEY_2 = "fedcba9876543210fedcba9876543210"
PROJECTS = [ProjectConfig(id=1, slug="demo", keys=[KEY_1]), ProjectConfig(id=2, slug="other", keys=[KEY_2])]


def eid(n: int) -> str:
    return f"{n:032x}"


def event(n: int, *, project_id: int = 1, group_hash: str | None = "hash-a", timestamp: float = 1000.0,
          received: float = 1000.0, title: str = "ValueError: boom", item_type: str = "event",
          data: dict | None = None) -> ProcessedEvent:
    return ProcessedEvent(
        project_id=project_id, event_id=eid(n), item_type=item_type, received=received, timestamp=timestamp,
        data=data if data is not None else {"event_id": eid(n), "platform": "python", "release": "r1"},
        group_hash=group_hash if item_type != "transaction" else None, title=title, culprit="app.main",
        level="error", metadata={"type": "ValueError"},
    )


def transaction(n: int, **kwargs) -> ProcessedEvent:
    data = {"event_id": eid(n), "transaction": "/checkout", "start_timestamp": 999.5,
            "contexts": {"trace": {"op": "http.server"}}}
    return event(n, item_type="transaction", data=data, **kwargs)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "store.sqlite"


@pytest.fixture
def store(path):
    with SqliteStore(path) as store:
        store.seed_projects(PROJECTS)
        yield store


def issue_counts(store: SqliteStore, slug: str | None = None) -> dict[str, int]:
    return {issue["title"]: issue["count"] for issue in store.list_issues(slug)}


# -- projects and keys ---------------------------------------------------------------------------


def test_seeded_projects_and_keys(store):
    assert [(p["id"], p["slug"], p["keys"]) for p in store.list_projects()] == [
        (1, "demo", [KEY_1]), (2, "other", [KEY_2])
    ]
    assert store.project_keys() == {KEY_1: (1, True), KEY_2: (2, True)}
    assert store.project_by_slug("other")["id"] == 2


def test_seeding_again_follows_the_config(store):
    store.seed_projects([ProjectConfig(id=1, slug="renamed", keys=[KEY_1, KEY_2])])
    assert store.project_by_slug("renamed")["id"] == 1
    assert store.project_keys() == {KEY_1: (1, True), KEY_2: (1, True)}


def test_create_project(store):
    project_id, key = store.create_project("new-one")
    assert project_id not in (1, 2)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert store.project_keys()[key] == (project_id, True)
    assert store.project_by_slug("new-one")["id"] == project_id


@pytest.mark.parametrize("slug", ["demo", "again"])
def test_create_project_with_a_taken_slug_is_a_storage_error(store, slug):
    if slug == "again":
        store.create_project("again")
    before = store.list_projects()
    with pytest.raises(StorageError, match=slug):
        store.create_project(slug)
    assert store.list_projects() == before
    store.create_project("still-works")  # the failed call left no transaction open


def test_keys_can_be_disabled_and_enabled(store):
    store.set_key_active(KEY_1, False)
    assert store.project_keys()[KEY_1] == (1, False)
    assert store.list_projects()[0]["keys"] == []  # only active keys are listed
    store.set_key_active(KEY_1, True)
    assert store.project_keys()[KEY_1] == (1, True)
    with pytest.raises(NotFound):
        store.set_key_active("f" * 32, False)


def test_unknown_project_slug_is_not_found(store):
    with pytest.raises(NotFound):
        store.project_by_slug("nope")
    with pytest.raises(NotFound):
        store.list_issues("nope")


# -- idempotent writes ---------------------------------------------------------------------------


def test_same_event_twice_in_one_batch_is_stored_once(store):
    assert store.write_batch([event(1), event(1)], []) == [True, False]
    assert store.counts() == {"events": 1, "transactions": 0, "issues": 1}
    assert issue_counts(store) == {"ValueError: boom": 1}


def test_same_event_across_batches_is_stored_once(store):
    assert store.write_batch([event(1), event(2)], []) == [True, True]
    assert store.write_batch([event(2), event(3), event(1)], []) == [False, True, False]
    assert store.counts()["events"] == 3
    assert issue_counts(store) == {"ValueError: boom": 3}


def test_same_event_after_reopening_the_file_is_stored_once(path):
    with SqliteStore(path) as store:
        store.seed_projects(PROJECTS)
        assert store.write_batch([event(1)], []) == [True]
    with SqliteStore(path) as store:
        assert store.write_batch([event(1)], []) == [False]
        assert store.counts()["events"] == 1
        assert issue_counts(store) == {"ValueError: boom": 1}


def test_same_event_id_in_two_projects_is_two_events(store):
    assert store.write_batch([event(1, project_id=1), event(1, project_id=2)], []) == [True, True]
    assert store.counts() == {"events": 2, "transactions": 0, "issues": 2}


# -- issues --------------------------------------------------------------------------------------


def test_events_group_by_hash_within_a_project(store):
    store.write_batch([
        event(1, group_hash="a", title="A"), event(2, group_hash="b", title="B"),
        event(3, group_hash="a", title="A"), event(4, group_hash="a", title="A"),
    ], [])
    assert issue_counts(store, "demo") == {"A": 3, "B": 1}


def test_the_same_hash_in_another_project_is_another_issue(store):
    store.write_batch([event(1, group_hash="a", title="in demo"), event(2, project_id=2, group_hash="a", title="in other")], [])
    assert issue_counts(store, "demo") == {"in demo": 1}
    assert issue_counts(store, "other") == {"in other": 1}
    issues = store.list_issues()
    assert sorted((i["project"], i["project_id"]) for i in issues) == [("demo", 1), ("other", 2)]


def test_first_and_last_seen_and_latest_title(store):
    store.write_batch([event(1, timestamp=200.0, title="middle")], [])
    store.write_batch([event(2, timestamp=300.0, title="newest"), event(3, timestamp=100.0, title="oldest")], [])
    [issue] = store.list_issues("demo")
    assert (issue["first_seen"], issue["last_seen"], issue["count"]) == (100.0, 300.0, 3)
    assert issue["title"] == "newest"  # a late-arriving older event does not overwrite it
    assert issue["metadata"] == {"type": "ValueError"}
    assert issue["status"] == "unresolved"
    assert store.get_issue(issue["id"]) == issue


def test_list_issues_newest_first_with_limit_and_offset(store):
    store.write_batch([event(n, group_hash=f"h{n}", title=f"t{n}", timestamp=float(n)) for n in range(1, 6)], [])
    assert [i["title"] for i in store.list_issues()] == ["t5", "t4", "t3", "t2", "t1"]
    assert [i["title"] for i in store.list_issues(limit=2, offset=1)] == ["t4", "t3"]


def test_latest_event_of_an_issue(store):
    store.write_batch([event(1, timestamp=10.0), event(2, timestamp=30.0), event(3, timestamp=20.0)], [])
    [issue] = store.list_issues()
    latest = store.latest_event(issue["id"])
    assert (latest["event_id"], latest["issue_id"], latest["project_id"]) == (eid(2), issue["id"], 1)
    assert latest["data"]["event_id"] == eid(2)


def test_missing_issue_and_events_are_not_found(store):
    with pytest.raises(NotFound):
        store.get_issue(12345)
    with pytest.raises(NotFound):
        store.latest_event(12345)
    with pytest.raises(NotFound):
        store.get_event(eid(99))


# -- events and transactions ---------------------------------------------------------------------


def test_get_event_accepts_uuid_form(store):
    store.write_batch([event(0xABCDEF)], [])
    hex_id = eid(0xABCDEF)
    dashed = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}".upper()
    found = store.get_event(dashed)
    assert (found["event_id"], found["kind"], found["project_id"]) == (hex_id, "event", 1)
    assert found["data"] == {"event_id": hex_id, "platform": "python", "release": "r1"}
    assert found["issue_id"] == store.list_issues()[0]["id"]


def test_transactions_have_their_own_table(store):
    assert store.write_batch([transaction(7), transaction(7)], []) == [True, False]
    assert store.write_batch([transaction(7)], []) == [False]
    assert store.counts() == {"events": 0, "transactions": 1, "issues": 0}
    found = store.get_event(eid(7))
    assert (found["kind"], found["issue_id"], found["data"]["transaction"]) == ("transaction", None, "/checkout")
    row = store._run(lambda c: c.execute("SELECT name, op, duration_ms FROM transactions").fetchone())
    assert tuple(row) == ("/checkout", "http.server", pytest.approx(500.0))


# -- outcomes ------------------------------------------------------------------------------------


def totals(store: SqliteStore) -> dict[tuple, int]:
    return {(t["project_id"], t["outcome"], t["reason"], t["category"]): t["quantity"] for t in store.outcome_totals()}


def test_outcome_quantities_add_up_across_batches(store):
    row = OutcomeRow(timestamp=600, project_id=1, outcome=Outcome.INVALID, reason="too_large", category="error", quantity=2)
    store.write_batch([], [row])
    store.write_batch([], [row, OutcomeRow(600, 1, Outcome.INVALID, "too_large", "error", 3)])
    store.write_batch([], [OutcomeRow(660, 1, Outcome.INVALID, "too_large", "error", 1)])  # another minute
    store.write_batch([], [OutcomeRow(600, 2, Outcome.RATE_LIMITED, "backpressure", "transaction", 4)])
    assert totals(store) == {
        (1, "invalid", "too_large", "error"): 8,
        (2, "rate_limited", "backpressure", "transaction"): 4,
    }
    minute_rows = store._run(lambda c: c.execute("SELECT quantity FROM outcomes WHERE timestamp = 600 AND project_id = 1").fetchall())
    assert [r[0] for r in minute_rows] == [7]


def test_accepted_outcome_counted_only_for_new_events(store):
    store.write_batch([event(1, received=1000.0), event(1, received=1000.0), transaction(2)], [])
    store.write_batch([event(1), transaction(2), event(3, project_id=2)], [])
    assert totals(store) == {
        (1, "accepted", "", "error"): 1,
        (1, "accepted", "", "transaction"): 1,
        (2, "accepted", "", "error"): 1,
    }


def test_accepted_outcomes_are_bucketed_by_minute_of_receipt(store):
    store.write_batch([event(1, received=125.0), event(2, received=179.9), event(3, received=180.0)], [])
    rows = store._run(lambda c: c.execute(
        "SELECT timestamp, quantity FROM outcomes WHERE outcome = 0 ORDER BY timestamp").fetchall())
    assert [tuple(r) for r in rows] == [(120, 2), (180, 1)]


# -- failures ------------------------------------------------------------------------------------


def test_a_failed_batch_is_rolled_back_and_the_store_stays_usable(store):
    bad_outcome = OutcomeRow(600, 1, Outcome.INVALID, "x", "error", None)  # quantity NOT NULL
    with pytest.raises(StorageError):
        store.write_batch([event(1)], [bad_outcome])
    assert store.counts() == {"events": 0, "transactions": 0, "issues": 0}
    assert store.write_batch([event(1)], []) == [True]


def test_an_event_that_cannot_be_serialized_does_not_wedge_the_store(store):
    unserializable = event(2, data={"tags": {1, 2}})  # a set is not JSON
    with pytest.raises(TypeError):  # a caller's bug, not a storage failure: not retried as one
        store.write_batch([event(1), unserializable], [])
    assert store.counts()["events"] == 0  # the whole batch was rolled back
    assert store.write_batch([event(1)], []) == [True]


def test_readonly_store_on_a_missing_file(tmp_path):
    with pytest.raises(StorageError, match="no store"):
        SqliteStore(tmp_path / "missing.sqlite", readonly=True).open()
    assert not (tmp_path / "missing.sqlite").exists()


def test_readonly_store_reads_but_refuses_writes(store, path):
    store.write_batch([event(1)], [])
    with SqliteStore(path, readonly=True) as reader:
        assert reader.counts()["events"] == 1
        assert reader.get_event(eid(1))["event_id"] == eid(1)
        with pytest.raises(StorageError):
            reader.write_batch([event(2)], [])
        with pytest.raises(StorageError):
            reader.create_project("x")


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_corrupt_file_is_a_storage_error(tmp_path, readonly):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"this is not a database, just junk bytes " * 200)
    with pytest.raises(StorageError) as info:
        store = SqliteStore(path, readonly=readonly).open()
        try:
            store.list_projects()
        finally:
            store.close()
    assert not isinstance(info.value, sqlite3.Error)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_using_a_closed_store_is_a_storage_error(path):
    store = SqliteStore(path).open()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageError, match="not open"):
        store.counts()


def test_config_version_moves_on_every_project_and_key_change(tmp_path):
    from minisentry.backends.sqlite import SqliteStore

    with SqliteStore(tmp_path / "s.sqlite") as store:
        start = store.config_version()
        _, key = store.create_project("web")
        after_create = store.config_version()
        assert after_create > start
        store.set_key_active(key, False)
        assert store.config_version() > after_create
        unchanged = store.config_version()
        store.write_batch([], [])
        assert store.config_version() == unchanged


def test_a_resolved_issue_reopens_when_a_new_event_arrives(store):
    store.write_batch([event(1)], [])
    (issue,) = store.list_issues()
    store.set_issue_status(issue["id"], "resolved")
    store.write_batch([event(1)], [])  # a redelivered event is not a new one: stays resolved
    assert store.get_issue(issue["id"])["status"] == "resolved"
    store.write_batch([event(2, timestamp=1001.0)], [])
    assert store.get_issue(issue["id"])["status"] == "unresolved"
    assert store.get_issue(issue["id"])["count"] == 2
