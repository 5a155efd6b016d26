"""The store reads behind the issue chart, tag breakdown and operations pages, on a SQLite file."""

from __future__ import annotations

import pytest

from minisentry.backends.sqlite import SqliteStore

from ..backends.test_sqlite_store import PROJECTS, eid, event


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.seed_projects(PROJECTS)
        yield store


def test_tag_counts_survive_odd_tag_shapes_and_are_limited_to_the_newest_events(store):
    shapes = [
        [["browser", "Chrome"], ["customer", "acme"]],
        [["browser", "Chrome"], ["browser", "Chrome"]],  # a repeated pair counts once per event
        {"browser": "Firefox"},  # not the normalized list: ignored, not an error
        [[1, "numeric key"], ["nested", {"a": 1}], ["short"], "text", None],
        None,
    ]
    store.write_batch([event(n, timestamp=1000.0 + n, data={"event_id": eid(n), "tags": tags, "release": "r1"})
                       for n, tags in enumerate(shapes)], [])
    ((issue_id,),) = store._run(lambda c: c.execute("SELECT id FROM issues").fetchall())
    total, counts = store.issue_tag_counts(issue_id)
    assert total == 5
    by_pair = {(k, v): n for k, v, n in counts}
    assert by_pair[("browser", "Chrome")] == 2 and by_pair[("customer", "acme")] == 1
    assert by_pair[("nested", '{"a":1}')] == 1 and by_pair[("level", "error")] == 5
    assert not any(k == "1" or v == "Firefox" for k, v, _ in counts)
    # Only the newest two events: the ones without list tags.
    total, counts = store.issue_tag_counts(issue_id, max_events=2)
    assert total == 2 and ("browser", "Chrome", 2) not in counts


def test_event_series_buckets_by_event_time_within_the_window(store):
    store.write_batch([event(n, timestamp=t) for n, t in enumerate((3600.0, 3601.0, 7300.0, 99999.0))], [])
    ((issue_id,),) = store._run(lambda c: c.execute("SELECT id FROM issues").fetchall())
    assert store.issue_event_series(issue_id, 3600, 3600 * 3, 3600) == {3600: 2, 7200: 1}
