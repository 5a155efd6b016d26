"""The SQLite store's write path: events, transactions, feedback, attachments, outcomes, sessions,
logs and plugin records.

One writer (the store stage) writes each batch in a single transaction. Every write is idempotent:
an event id already stored for its project is skipped, and its issue count is not bumped again, so
redelivered messages are harmless. What a new event does to its issue's status (a resolved issue
reopens as a regression, an ignored one whose condition expired is unignored) is decided by
``issue_status.on_event``; new issues, regressions and unignored issues are appended to the issue
activity log (``sqlite_activity.py``) in the same transaction. Plugin records are written once per
id (``sqlite_plugin_ids.py``).

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError (a plugin's own exceptions pass through, rolled back).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

import orjson
import sqlite_utils

from ..issue_status import on_event
from ..messages import ProcessedEvent
from ..outcomes import Outcome, OutcomeRow, category_of_item
from .sqlite_activity import record_activity
from .sqlite_plugin_ids import first_delivery

__all__ = ["EventWritesMixin"]


class EventWritesMixin:
    """Batches of events and outcomes, sessions, logs and plugin records (needs the store's ``_run``)."""

    def write_batch(self, events: list[ProcessedEvent], outcomes: list[OutcomeRow]) -> list[bool]:
        """Store events and add outcome counts in one transaction; return which events were new.

        An event whose (project, event id) is already stored is skipped; an ``accepted`` outcome is
        counted for each new one.
        """
        return self._run(self._write_batch, events, outcomes)  # type: ignore[attr-defined]

    def _write_batch(self, conn: sqlite3.Connection, events: list[ProcessedEvent], outcomes: list[OutcomeRow]) -> list[bool]:
        conn.execute("BEGIN IMMEDIATE")
        new: list[bool] = []
        accepted: dict[tuple[int, int, str], int] = {}
        for event in events:
            inserted = self._insert_event(conn, event)
            new.append(inserted)
            if inserted:
                category = category_of_item(event.item_type)
                minute = int(event.received // 60 * 60)
                accepted[(minute, event.project_id, category)] = accepted.get((minute, event.project_id, category), 0) + 1
                size = sum(len(a.data) for a in event.attachments)
                if size:
                    key = (minute, event.project_id, "attachment")
                    accepted[key] = accepted.get(key, 0) + size
        rows = [(m, p, int(Outcome.ACCEPTED), "", c, q) for (m, p, c), q in accepted.items()]
        rows += [(o.timestamp, o.project_id, int(o.outcome), o.reason, o.category, o.quantity) for o in outcomes]
        conn.executemany(
            "INSERT INTO outcomes(timestamp, project_id, outcome, reason, category, quantity) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(timestamp, project_id, outcome, reason, category) DO UPDATE SET quantity = quantity + excluded.quantity",
            rows,
        )
        conn.execute("COMMIT")
        return new

    def _insert_event(self, conn: sqlite3.Connection, event: ProcessedEvent) -> bool:
        data = event.data
        body = (event.body if event.body is not None else orjson.dumps(data)).decode()
        if event.item_type in ("user_report", "feedback"):
            # A user report for an event replaces an earlier one (the user edited it), as in Sentry.
            verb = "INSERT OR REPLACE" if event.item_type == "user_report" else "INSERT OR IGNORE"
            cursor = conn.execute(
                f"{verb} INTO feedback(project_id, feedback_id, kind, associated_event_id, name, email, message, url, "
                "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.project_id, event.event_id, event.item_type, data.get("associated_event_id"), data.get("name"),
                 data.get("email"), data.get("message"), data.get("url"), event.received),
            )
            return cursor.rowcount == 1
        if event.item_type == "transaction":
            start = data.get("start_timestamp")
            duration = (event.timestamp - start) * 1000 if isinstance(start, (int, float)) else None
            trace = (data.get("contexts") or {}).get("trace") or {}
            cursor = conn.execute(
                "INSERT OR IGNORE INTO transactions(project_id, event_id, name, op, start_timestamp, timestamp, "
                "duration_ms, received, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.project_id, event.event_id, data.get("transaction"), trace.get("op"), start,
                 event.timestamp, duration, event.received, body),
            )
            return cursor.rowcount == 1
        if conn.execute(
            "SELECT 1 FROM events WHERE project_id = ? AND event_id = ?", (event.project_id, event.event_id)
        ).fetchone():
            return False
        issue_id = None
        if event.group_hash is not None:
            before = conn.execute("SELECT status, status_details, count FROM issues WHERE project_id = ? AND hash = ?",
                                  (event.project_id, event.group_hash)).fetchone()
            step = on_event(before, release=data.get("release"), now=event.received)
            issue_id = conn.execute(
                """INSERT INTO issues(project_id, hash, title, culprit, level, metadata, count, first_seen, last_seen, status)
                   VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, 'unresolved')
                   ON CONFLICT(project_id, hash) DO UPDATE SET
                     count = count + 1,
                     title = CASE WHEN excluded.last_seen >= last_seen THEN excluded.title ELSE title END,
                     culprit = CASE WHEN excluded.last_seen >= last_seen THEN excluded.culprit ELSE culprit END,
                     level = CASE WHEN excluded.last_seen >= last_seen THEN excluded.level ELSE level END,
                     metadata = CASE WHEN excluded.last_seen >= last_seen THEN excluded.metadata ELSE metadata END,
                     first_seen = min(first_seen, excluded.first_seen),
                     last_seen = max(last_seen, excluded.last_seen),
                     status = ?, status_details = ?
                   RETURNING id""",
                (event.project_id, event.group_hash, event.title, event.culprit, event.level,
                 orjson.dumps(event.metadata).decode(), event.timestamp, event.timestamp, step.status, step.details),
            ).fetchone()[0]
            if step.activity is not None:
                record_activity(conn, issue_id, event.project_id, step.activity, event.event_id)
        conn.execute(
            "INSERT INTO events(project_id, event_id, issue_id, timestamp, received, level, title, platform, release, "
            "environment, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.project_id, event.event_id, issue_id, event.timestamp, event.received, event.level, event.title,
             data.get("platform"), data.get("release"), data.get("environment"), body),
        )
        # Only with a newly stored event: a redelivered one already has its attachments.
        conn.executemany(
            "INSERT INTO attachments(project_id, event_id, filename, content_type, attachment_type, size, data, "
            "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(event.project_id, event.event_id, a.filename, a.content_type, a.attachment_type, len(a.data), a.data,
              event.received) for a in event.attachments],
        )
        return True

    def write_sessions(self, rows: list[Any]) -> None:
        """Add session counts (``sessions.SessionCounts``) to the release-health table in one transaction."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO release_health(project_id, release, environment, minute, started, exited, errored, "
                "crashed, abnormal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(project_id, release, environment, minute) DO UPDATE SET "
                "started = started + excluded.started, exited = exited + excluded.exited, "
                "errored = errored + excluded.errored, crashed = crashed + excluded.crashed, "
                "abnormal = abnormal + excluded.abnormal",
                [(r.project_id, r.release, r.environment, r.minute, r.started, r.exited, r.errored, r.crashed,
                  r.abnormal) for r in rows],
            )
            conn.execute("COMMIT")

        self._run(run)  # type: ignore[attr-defined]

    def write_logs(self, records: list[Any]) -> None:
        """Store log records (``logs.LogRecord``) in one transaction."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO logs(project_id, timestamp, level, body, trace_id, span_id, attributes) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(r.project_id, r.timestamp, r.level, r.body, r.trace_id, r.span_id, r.attributes)
                              for r in records])
            conn.execute("COMMIT")

        self._run(run)  # type: ignore[attr-defined]

    # -- plugin item types --------------------------------------------------------------------

    def migrate_plugins(self, item_types: Iterable[Any]) -> None:
        """Run each plugin item type's ``migrate(db)`` (sqlite-utils Database on this file). Blocks.

        Raises StorageError for SQLite failures; a plugin's other exceptions pass through (the
        Pipeline turns them into PluginError at startup).
        """
        def run(conn: sqlite3.Connection) -> None:
            for item_type in item_types:
                item_type.migrate(sqlite_utils.Database(conn))
        self._run(run)  # type: ignore[attr-defined]

    def read_plugin(self, read: Any) -> Any:
        """Return ``read(db)`` with a sqlite-utils Database on this file (a plugin's read route). Blocks.

        Raises StorageError for SQLite failures; the plugin's other exceptions pass through.
        """
        return self._run(lambda conn: read(sqlite_utils.Database(conn)))  # type: ignore[attr-defined]

    def write_plugin_records(self, item_type: Any, records: list[Any]) -> list[Any]:
        """Write one item type's new records with its ``store(db, records)`` in one transaction. Blocks.

        A record whose ``record_id`` was written before (a redelivery) is left out, so the plugin's
        ``store`` and the accepted count see it once; records without an id are always written.
        Returns the records written. Raises StorageError for SQLite failures (rolled back); the
        plugin's other exceptions pass through, also rolled back.
        """
        def run(conn: sqlite3.Connection) -> list[Any]:
            conn.execute("BEGIN IMMEDIATE")
            fresh = first_delivery(conn, item_type.type, records)
            if fresh:
                item_type.store(sqlite_utils.Database(conn), fresh)
            # sqlite-utils' insert_all commits itself (``with conn:``); commit what is left open.
            if conn.in_transaction:
                conn.execute("COMMIT")
            return fresh
        return self._run(run)  # type: ignore[attr-defined]
