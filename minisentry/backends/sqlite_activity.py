"""The issue activity log: what happened to issues (new, regression, unignored) in the order it was stored.

The store stage writes a row in the same transaction as the event that caused it, so the log and
the events never disagree, whatever crashes. Consumers (alerts, and anything a plugin adds) read it
with a cursor of their own that they advance only after their work is done: at-least-once, across
restarts and across processes that share the file.

The log is bounded: past ``ACTIVITY_KEEP`` rows the oldest go (checked every ``_PRUNE_EVERY``
rows written), so a consumer that stays away for that long loses the oldest entries, never the
store's disk. A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O
and raise StorageError.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["ActivityMixin", "create_activity_tables", "record_activity", "ACTIVITY_KINDS", "ACTIVITY_KEEP"]

#: What a row can say about its issue.
ACTIVITY_KINDS = ("new", "regression", "unignored")
#: How many activity rows the store keeps.
ACTIVITY_KEEP = 100_000
_PRUNE_EVERY = 1_000


def create_activity_tables(db: Any) -> None:
    """Create ``issue_activity`` and ``activity_cursors`` if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS issue_activity (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "issue_id INTEGER NOT NULL, project_id INTEGER NOT NULL, kind TEXT NOT NULL, "
               "event_id TEXT, created REAL NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS activity_cursors (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL)")


def record_activity(conn: sqlite3.Connection, issue_id: int, project_id: int, kind: str, event_id: str | None) -> None:
    """Append one activity row inside the caller's open transaction (trims the log now and then)."""
    row_id = conn.execute(
        "INSERT INTO issue_activity(issue_id, project_id, kind, event_id, created) VALUES (?, ?, ?, ?, ?)",
        (issue_id, project_id, kind, event_id, time.time())).lastrowid
    if row_id is not None and row_id % _PRUNE_EVERY == 0:
        conn.execute("DELETE FROM issue_activity WHERE id <= ?", (row_id - ACTIVITY_KEEP,))


class ActivityMixin:
    """Reading the activity log and keeping consumers' cursors (needs the store's ``_run``)."""

    def activity_after(self, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` activity rows with ids above ``after_id``, oldest first, with their issue.

        Each row: ``id, issue_id, project_id, kind, event_id, created`` and the issue's ``title,
        culprit, level, count, status, first_seen, last_seen`` and project ``slug``. Raises StorageError.
        """
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT a.id, a.issue_id, a.project_id, a.kind, a.event_id, a.created, i.title, i.culprit, i.level, "
            "i.count, i.status, i.first_seen, i.last_seen, p.slug FROM issue_activity a "
            "JOIN issues i ON i.id = a.issue_id JOIN projects p ON p.id = a.project_id "
            "WHERE a.id > ? ORDER BY a.id LIMIT ?", (after_id, limit)).fetchall())
        return [dict(row) for row in rows]

    def activity_cursor(self, name: str) -> int | None:
        """The last activity id consumer ``name`` finished, or None if it never ran. Raises StorageError."""
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT last_id FROM activity_cursors WHERE name = ?", (name,)).fetchone())
        return None if row is None else int(row[0])

    def last_activity_id(self) -> int:
        """The newest activity id (0 for an empty log). Raises StorageError."""
        row = self._run(lambda c: c.execute("SELECT max(id) FROM issue_activity").fetchone())  # type: ignore[attr-defined]
        return int(row[0] or 0)

    def set_activity_cursor(self, name: str, last_id: int) -> None:
        """Record that consumer ``name`` finished every row up to ``last_id``. Raises StorageError."""
        self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "INSERT INTO activity_cursors(name, last_id) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET last_id = max(last_id, excluded.last_id)", (name, last_id)))
