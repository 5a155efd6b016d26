"""The SQLite store's reads for browsing an issue's events in the web UI.

One event of an issue, its neighbours in time (newest, older, newer, oldest) and one page of
short event summaries. Events are ordered as everywhere else: by timestamp, then by rowid (the
order they were stored), so events with equal timestamps still have a stable order. Every read
uses the ``(issue_id, timestamp)`` index and a LIMIT.

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O and raise
StorageError (NotFound for an event that is not the issue's).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..errors import NotFound

__all__ = ["IssueEventsMixin", "stored_event_id"]

_NEWER = ("timestamp > ? OR (timestamp = ? AND rowid > ?)", "timestamp ASC, rowid ASC")
_OLDER = ("timestamp < ? OR (timestamp = ? AND rowid < ?)", "timestamp DESC, rowid DESC")


def stored_event_id(event_id: str) -> str:
    """An event id as the store keeps it: hex without hyphens, lower case (no validation)."""
    return event_id.replace("-", "").lower()


def _first(conn: sqlite3.Connection, issue_id: int, where: str, order: str, params: tuple) -> str | None:
    row = conn.execute(f"SELECT event_id FROM events WHERE issue_id = ? AND ({where}) ORDER BY {order} LIMIT 1",
                       (issue_id, *params)).fetchone()
    return row[0] if row is not None else None


class IssueEventsMixin:
    """One event of an issue, its neighbours and a page of summaries (needs the store's ``_run``)."""

    def issue_event(self, issue_id: int, event_id: str) -> dict[str, Any]:
        """The event ``event_id`` of issue ``issue_id``: ``{project_id, event_id, issue_id, timestamp,
        received, data}``. Raises NotFound when there is no such event or it belongs to another issue."""
        wanted = stored_event_id(event_id)
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT project_id, event_id, issue_id, timestamp, received, data FROM events "
            "WHERE event_id = ? AND issue_id = ?", (wanted, issue_id)).fetchone())
        if row is None:
            raise NotFound(f"issue {issue_id} has no event {wanted}")
        return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "timestamp": row[3],
                "received": row[4], "data": orjson.loads(row[5])}

    def issue_event_neighbours(self, issue_id: int, event_id: str) -> dict[str, str | None]:
        """Ids of the issue's ``newest``, ``older``, ``newer`` and ``oldest`` events seen from ``event_id``
        (None where there is none, e.g. no ``newer`` of the newest). Raises NotFound for an event of
        another issue."""
        wanted = stored_event_id(event_id)

        def run(conn: sqlite3.Connection) -> dict[str, str | None]:
            row = conn.execute("SELECT timestamp, rowid FROM events WHERE event_id = ? AND issue_id = ?",
                               (wanted, issue_id)).fetchone()
            if row is None:
                raise NotFound(f"issue {issue_id} has no event {wanted}")
            at = (row[0], row[0], row[1])
            return {"newest": _first(conn, issue_id, "1", "timestamp DESC, rowid DESC", ()),
                    "older": _first(conn, issue_id, _OLDER[0], _OLDER[1], at),
                    "newer": _first(conn, issue_id, _NEWER[0], _NEWER[1], at),
                    "oldest": _first(conn, issue_id, "1", "timestamp ASC, rowid ASC", ())}

        return self._run(run)  # type: ignore[attr-defined]

    def issue_event_summaries(self, issue_id: int, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """One page of an issue's events, newest first, without their bodies: ``{event_id, timestamp,
        release, environment, title, message, user}`` (``user`` a dict, possibly empty). Raises StorageError."""
        # json_extract picks the few fields out in SQL: a page never loads whole event bodies.
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT event_id, timestamp, release, environment, title, "
            "coalesce(json_extract(data, '$.logentry.formatted'), json_extract(data, '$.logentry.message'), "
            "CASE json_type(data, '$.message') WHEN 'text' THEN json_extract(data, '$.message') END), "
            "CASE json_type(data, '$.user') WHEN 'object' THEN json_extract(data, '$.user') END "
            "FROM events WHERE issue_id = ? ORDER BY timestamp DESC, rowid DESC LIMIT ? OFFSET ?",
            (issue_id, limit, offset)).fetchall())
        return [{"event_id": row[0], "timestamp": row[1], "release": row[2], "environment": row[3],
                 "title": row[4], "message": row[5], "user": orjson.loads(row[6]) if row[6] else {}} for row in rows]
