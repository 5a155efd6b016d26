"""Retention: old events and events beyond a project's cap are deleted in bounded batches; issues keep counts."""

from __future__ import annotations

import sqlite3
import uuid

import anyio
import pytest

from minisentry import Pipeline
from minisentry.backends.sqlite import SqliteStore
from minisentry.config import ProjectConfig, RetentionConfig, config_from_dict
from minisentry.errors import ConfigError
from minisentry.messages import Attachment
from minisentry.retention import prune_round

from .backends.test_sqlite_store import event, transaction
from .conftest import base_config
from .test_pipeline import error_envelope

DAY = 86400.0
NOW = 100 * DAY


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite").open() as opened:
        opened.seed_projects([ProjectConfig(id=1, slug="one", keys=[]), ProjectConfig(id=2, slug="two", keys=[])])
        yield opened


def rows(store, sql):
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_events_past_the_age_go_with_their_attachments_and_issues_keep_their_counts(store):
    old = [event(n, received=NOW - 40 * DAY) for n in range(5)]
    old[0].attachments = [Attachment("log.txt", "text/plain", "event.attachment", b"old log")]
    new = [event(n, received=NOW - DAY) for n in range(5, 8)]
    store.write_batch(old + new + [transaction(20, received=NOW - 40 * DAY), transaction(21, received=NOW)], [])
    assert rows(store, "SELECT count FROM issues") == [(8,)]

    # At most `batch` rows of each kind per call: the backlog goes over several calls.
    assert store.prune(older_than=NOW - 30 * DAY, max_events_per_project=None, batch=2) == 3  # 2 events, 1 txn
    assert store.prune(older_than=NOW - 30 * DAY, max_events_per_project=None, batch=2) == 2
    assert store.prune(older_than=NOW - 30 * DAY, max_events_per_project=None, batch=2) == 1
    assert store.prune(older_than=NOW - 30 * DAY, max_events_per_project=None, batch=2) == 0
    assert sorted(r[0] for r in rows(store, "SELECT received FROM events")) == [NOW - DAY] * 3
    assert rows(store, "SELECT count(*) FROM transactions") == [(1,)]
    assert rows(store, "SELECT count(*) FROM attachments") == [(0,)]
    assert rows(store, "SELECT count FROM issues") == [(8,)]  # the issue remembers all eight


def test_a_project_over_its_cap_loses_its_oldest_events_only(store):
    store.write_batch([event(n, received=NOW + n) for n in range(6)]
                      + [event(n, project_id=2, received=NOW) for n in range(10, 12)], [])
    assert store.prune(older_than=None, max_events_per_project=4, batch=100) == 2
    kept = rows(store, "SELECT project_id, received FROM events ORDER BY project_id, received")
    assert kept == [(1, NOW + 2), (1, NOW + 3), (1, NOW + 4), (1, NOW + 5), (2, NOW), (2, NOW)]
    assert store.prune(older_than=None, max_events_per_project=4, batch=100) == 0


@pytest.mark.anyio
async def test_one_round_is_bounded_by_max_batches(store):
    store.write_batch([event(n, received=NOW - 40 * DAY) for n in range(5)], [])
    retention = RetentionConfig(days=30, batch=1, max_batches=2)
    assert await prune_round(store, retention, now=NOW) == 2
    assert await prune_round(store, retention, now=NOW) == 2
    assert await prune_round(store, retention, now=NOW) == 1
    assert await prune_round(store, RetentionConfig(days=0), now=NOW) == 0  # both rules off: nothing runs


@pytest.mark.anyio
async def test_a_running_pipeline_prunes_in_the_background(tmp_path):
    config = config_from_dict(base_config(tmp_path, retention={"max_events_per_project": 3, "interval": 0.05}),
                              base_dir=tmp_path)
    async with Pipeline(config, http=False) as pipeline:
        for _ in range(5):
            await pipeline.submit(error_envelope(uuid.uuid4().hex), project_id=1)
        await pipeline.flush()
        with anyio.fail_after(10):
            while await anyio.to_thread.run_sync(lambda: pipeline.store.counts()["events"]) > 3:
                await anyio.sleep(0.05)
    conn = sqlite3.connect(tmp_path / "store.sqlite")
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
        assert conn.execute("SELECT sum(count) FROM issues").fetchone() == (5,)
    finally:
        conn.close()


@pytest.mark.parametrize("section, message", [
    ({"days": -1}, "retention.days and retention.max_events_per_project must be >= 0"),
    ({"batch": 0}, "retention.batch must be greater than 0"),
    ({"keep": 1}, "unknown key 'retention.keep'"),
])
def test_bad_retention_settings_are_refused(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(base_config(tmp_path, retention=section), base_dir=tmp_path)
