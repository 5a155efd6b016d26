"""Retention for the SQLite store: events and transactions past an age, or past a count per project, go.

Issues keep their counts and first/last seen: only the event rows (with their attachments) are
deleted. Work is bounded: one call deletes at most ``batch`` rows of each kind, so a large backlog
is worked off over several calls instead of holding the write lock for long. A mixin of
:class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O and raise StorageError.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["RetentionMixin", "create_retention_indexes"]


def create_retention_indexes(db: Any) -> None:
    """Indexes that keep pruning from scanning whole tables (part of the store's migration)."""
    db.execute("CREATE INDEX IF NOT EXISTS events_received ON events(received)")
    db.execute("CREATE INDEX IF NOT EXISTS events_project_received ON events(project_id, received)")
    db.execute("CREATE INDEX IF NOT EXISTS transactions_received ON transactions(received)")


def _delete_events(conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
    conn.executemany("DELETE FROM attachments WHERE project_id = ? AND event_id = ?", rows)
    conn.executemany("DELETE FROM events WHERE project_id = ? AND event_id = ?", rows)


class RetentionMixin:
    """``prune``: the store's side of ``[retention]`` (needs the store's ``_run``)."""

    def prune(self, *, older_than: float | None, max_events_per_project: int | None, batch: int) -> int:
        """Delete up to ``batch`` events received before ``older_than`` (and as many transactions),
        then up to ``batch`` of the oldest events of projects holding more than ``max_events_per_project``.

        ``None`` switches a rule off. Returns the rows deleted (0: nothing left to do). Raises StorageError.
        """
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            deleted = 0
            if older_than is not None:
                rows = conn.execute("SELECT project_id, event_id FROM events WHERE received < ? LIMIT ?",
                                    (older_than, batch)).fetchall()
                _delete_events(conn, rows)
                deleted += len(rows)
                deleted += conn.execute("DELETE FROM transactions WHERE rowid IN (SELECT rowid FROM transactions "
                                        "WHERE received < ? LIMIT ?)", (older_than, batch)).rowcount
            if max_events_per_project is not None:
                budget = batch
                over = conn.execute("SELECT project_id, COUNT(*) - ? FROM events GROUP BY project_id "
                                    "HAVING COUNT(*) > ?", (max_events_per_project, max_events_per_project)).fetchall()
                for project_id, excess in over:
                    if budget <= 0:
                        break
                    rows = conn.execute("SELECT project_id, event_id FROM events WHERE project_id = ? "
                                        "ORDER BY received, rowid LIMIT ?", (project_id, min(excess, budget))).fetchall()
                    _delete_events(conn, rows)
                    deleted += len(rows)
                    budget -= len(rows)
            conn.execute("COMMIT")
            return deleted

        return self._run(run)
