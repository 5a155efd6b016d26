"""The monitor-failure log: every cron check-in that ends ``error``, ``missed`` or ``timeout``.

Check-ins are written in two places (the store stage's ``record_check_ins`` and the monitor clock's
``detect_missed``); rather than touching both, triggers on ``check_ins`` append a row here whenever
a check-in is inserted with a failed status or its status changes to one. A trigger runs inside the
statement that fired it, so the log row commits or rolls back with the status change itself.

Consumers (the alert worker) read it by cursor like the issue activity log, with cursors in the same
``activity_cursors`` table. The log is bounded: each insert deletes rows more than
``MONITOR_FAILURES_KEEP`` ids behind it (a primary-key range delete, cheap). A mixin of
:class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O and raise StorageError.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MonitorFailuresMixin", "create_monitor_failure_tables", "MONITOR_FAILURES_KEEP", "FAILED_STATUSES"]

#: Check-in statuses that count as a failed run of the monitor.
FAILED_STATUSES = ("error", "missed", "timeout")
#: How many failure rows the store keeps.
MONITOR_FAILURES_KEEP = 10_000

_FAILED = ", ".join(f"'{status}'" for status in FAILED_STATUSES)
_APPEND = ("INSERT INTO monitor_failures(project_id, monitor_slug, check_in_id, status, environment, created) "
           "VALUES (NEW.project_id, NEW.monitor_slug, NEW.check_in_id, NEW.status, NEW.environment, NEW.updated); "
           f"DELETE FROM monitor_failures WHERE id <= last_insert_rowid() - {MONITOR_FAILURES_KEEP};")


def create_monitor_failure_tables(db: Any) -> None:
    """Create ``monitor_failures`` and the triggers that fill it, if missing (part of the migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS monitor_failures (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "project_id INTEGER NOT NULL, monitor_slug TEXT NOT NULL, check_in_id TEXT NOT NULL, "
               "status TEXT NOT NULL, environment TEXT, created REAL NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS activity_cursors (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL)")
    db.execute(f"CREATE TRIGGER IF NOT EXISTS monitor_failure_insert AFTER INSERT ON check_ins "
               f"WHEN NEW.status IN ({_FAILED}) BEGIN {_APPEND} END")
    # Only a change *to* a failed status: rewriting the same status (a redelivered check-in) logs nothing.
    db.execute(f"CREATE TRIGGER IF NOT EXISTS monitor_failure_update AFTER UPDATE OF status ON check_ins "
               f"WHEN NEW.status IN ({_FAILED}) AND OLD.status IS NOT NEW.status BEGIN {_APPEND} END")


class MonitorFailuresMixin:
    """Reading the monitor-failure log (needs the store's ``_run``); cursors are the activity log's."""

    def monitor_failures_after(self, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` failure rows with ids above ``after_id``, oldest first. Raises StorageError.

        Each row: ``id, project_id, monitor_slug, check_in_id, status, environment, created``, the
        project ``slug`` and the monitor's ``schedule`` (its config's schedule, or None).
        """
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT f.id, f.project_id, f.monitor_slug, f.check_in_id, f.status, f.environment, f.created, "
            "p.slug, json_extract(m.config, '$.schedule') AS schedule FROM monitor_failures f "
            "JOIN projects p ON p.id = f.project_id "
            "LEFT JOIN monitors m ON m.project_id = f.project_id AND m.slug = f.monitor_slug "
            "WHERE f.id > ? ORDER BY f.id LIMIT ?", (after_id, limit)).fetchall())
        return [dict(row) for row in rows]

    def last_monitor_failure_id(self) -> int:
        """The newest failure id (0 for an empty log). Raises StorageError."""
        row = self._run(lambda c: c.execute("SELECT max(id) FROM monitor_failures").fetchone())  # type: ignore[attr-defined]
        return int(row[0] or 0)
