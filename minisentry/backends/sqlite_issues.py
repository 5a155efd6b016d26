"""The SQLite store's issue triage and event listings for the web API and UI.

Status changes (``issue_status.py`` decides what is stored), Sentry-style issue search
(``issue_query.py``), an issue's events, a project's events, first/last release and activity.
A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O and raise
StorageError (NotFound for unknown issues, events and projects).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson

from ..errors import NotFound
from ..issue_query import IssueSearch
from ..issue_status import StatusChange, stored_status
from .sqlite_issue_events import stored_event_id

__all__ = ["IssuesMixin", "migrate_issue_status", "ISSUE_COLUMNS", "API_SORTS"]

#: The columns every issue read selects (``_issue_row`` decodes them).
ISSUE_COLUMNS = ("i.id, p.slug AS project, i.project_id, i.title, i.culprit, i.level, i.count, i.first_seen, "
                 "i.last_seen, i.status, i.metadata, i.status_details")
#: Sentry's ``sort`` values of the issue list -> ORDER BY (never built from user input).
API_SORTS = {"date": "i.last_seen DESC, i.id DESC", "new": "i.first_seen DESC, i.id DESC",
             "freq": "i.count DESC, i.id DESC"}
_EVENT_COLUMNS = "project_id, event_id, issue_id, data"
_EVENT_FILTERS = {"release": "release", "environment": "environment"}


def migrate_issue_status(db: Any) -> None:
    """Add ``issues.status_details`` to a file that lacks it, and index the activity log by issue
    (schema 16) and a project's events by time (17: the events API pages through them newest first)."""
    db.execute("CREATE INDEX IF NOT EXISTS issue_activity_issue ON issue_activity(issue_id)")
    db.execute("CREATE INDEX IF NOT EXISTS events_project_time ON events(project_id, timestamp)")
    columns = {row[1] for row in db.execute("PRAGMA table_info(issues)").fetchall()}
    if "status_details" not in columns:
        db.execute("ALTER TABLE issues ADD COLUMN status_details TEXT")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _event(row: Any) -> dict[str, Any]:
    return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "data": orjson.loads(row[3])}


def _latest_release(conn: sqlite3.Connection, issue_id: int) -> Any:
    row = conn.execute("SELECT release FROM events WHERE issue_id = ? ORDER BY timestamp DESC, rowid DESC LIMIT 1",
                       (issue_id,)).fetchone()
    return row[0] if row is not None else None


class IssuesMixin:
    """Issue status changes, issue search and event listings (needs the store's ``_run``)."""

    def change_issue_status(self, issue_ids: list[int], change: StatusChange,
                            project_id: int | None = None) -> list[int]:
        """Apply ``change`` to the issues (of ``project_id`` when given) in one transaction; return the
        ids changed, in the order given. Unknown ids are skipped. Raises BadRequest (from
        ``stored_status``: next release without a release; nothing is changed then), StorageError."""

        def run(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            changed = []
            for issue_id in dict.fromkeys(issue_ids):
                row = conn.execute("SELECT count, project_id FROM issues WHERE id = ?", (issue_id,)).fetchone()
                if row is None or (project_id is not None and row[1] != project_id):
                    continue
                status, details = stored_status(change, count=row[0], latest_release=_latest_release(conn, issue_id))
                conn.execute("UPDATE issues SET status = ?, status_details = ? WHERE id = ?",
                             (status, orjson.dumps(details).decode(), issue_id))
                changed.append(issue_id)
            conn.execute("COMMIT")
            return changed

        return self._run(run)  # type: ignore[attr-defined]

    def find_issues(self, project_id: int, search: IssueSearch, *, sort: str = "date", limit: int = 25,
                    offset: int = 0, now: float | None = None) -> list[dict[str, Any]]:
        """One page of a project's issues matching ``search``, ordered by ``sort`` (a key of
        API_SORTS; others fall back to date). Raises StorageError."""
        from .sqlite import _issue_row

        sql = f"SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id WHERE i.project_id = ?"
        params: list[Any] = [project_id]
        if search.statuses:
            sql += f" AND i.status IN ({', '.join('?' * len(search.statuses))})"
            params += search.statuses
        if search.text:
            sql += " AND (i.title LIKE ? ESCAPE '\\' OR i.culprit LIKE ? ESCAPE '\\')"
            params += [_like(search.text)] * 2
        for key, values, negated in search.filters:
            marks = ", ".join("?" * len(values))
            if key == "level":
                condition = f"i.level IN ({marks})"
            else:  # release, environment: the issue has an event with one of the values
                condition = (f"EXISTS (SELECT 1 FROM events e WHERE e.issue_id = i.id "
                             f"AND e.{_EVENT_FILTERS[key]} IN ({marks}))")
            sql += f" AND {'NOT ' if negated else ''}{condition}"
            params += values
        if search.period is not None:
            sql += " AND i.last_seen >= ?"
            params.append((now if now is not None else time.time()) - search.period)
        sql += f" ORDER BY {API_SORTS.get(sort, API_SORTS['date'])} LIMIT ? OFFSET ?"
        params += [limit, offset]
        rows = self._run(lambda c: c.execute(sql, params).fetchall())  # type: ignore[attr-defined]
        return [_issue_row(row) for row in rows]

    def issue_events(self, issue_id: int, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """One page of an issue's events, newest first. Raises NotFound for an unknown issue."""
        self.get_issue(issue_id)  # type: ignore[attr-defined]
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE issue_id = ? ORDER BY timestamp DESC, rowid DESC "
            "LIMIT ? OFFSET ?", (issue_id, limit, offset)).fetchall())
        return [_event(row) for row in rows]

    def project_events(self, project_id: int, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """One page of a project's error events (not transactions), newest first. Raises StorageError."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE project_id = ? ORDER BY timestamp DESC, rowid DESC "
            "LIMIT ? OFFSET ?", (project_id, limit, offset)).fetchall())
        return [_event(row) for row in rows]

    def project_event(self, project_id: int, event_id: str) -> dict[str, Any]:
        """One event of a project by id (hyphens and case ignored). Raises NotFound."""
        event_id = stored_event_id(event_id)
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE project_id = ? AND event_id = ?",
            (project_id, event_id)).fetchone())
        if row is None:
            raise NotFound(f"no event {event_id} in project {project_id}")
        return _event(row)

    def issue_releases(self, issue_id: int) -> tuple[str | None, str | None]:
        """The releases of an issue's first and latest events (None where there is none). Raises StorageError."""

        def run(conn: sqlite3.Connection) -> tuple[Any, Any]:
            first = conn.execute("SELECT release FROM events WHERE issue_id = ? ORDER BY timestamp, rowid LIMIT 1",
                                 (issue_id,)).fetchone()
            return (first[0] if first else None), _latest_release(conn, issue_id)

        return self._run(run)  # type: ignore[attr-defined]

    def issue_activity(self, issue_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """An issue's activity rows (``id, kind, event_id, created``), newest first. Raises StorageError."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT id, kind, event_id, created FROM issue_activity WHERE issue_id = ? ORDER BY id DESC LIMIT ?",
            (issue_id, limit)).fetchall())
        return [dict(row) for row in rows]

    def project_first_events(self) -> dict[int, float]:
        """``{project_id: first_seen of its oldest issue}`` for projects with issues. Raises StorageError."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT project_id, min(first_seen) FROM issues GROUP BY project_id").fetchall())
        return {row[0]: row[1] for row in rows}
