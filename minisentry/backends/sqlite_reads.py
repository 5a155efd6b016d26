"""The SQLite store's reads for the CLI and the API: issues, events, attachments, feedback, release
health, logs and outcomes.

Reads that take an optional project slug raise NotFound for an unknown one (``_project_filter``).
Issue rows are decoded by ``sqlite._issue_row``, imported lazily (``sqlite.py`` imports this module).

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError (NotFound for an unknown project, issue, event or attachment).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..errors import NotFound
from ..outcomes import Outcome
from .sqlite_issue_events import stored_event_id
from .sqlite_issues import ISSUE_COLUMNS

__all__ = ["EventReadsMixin"]


class EventReadsMixin:
    """Issues, events, attachments, feedback, release health, logs and outcomes (needs the store's ``_run``)."""

    def _project_filter(self, project_slug: str | None, keyword: str) -> tuple[str, list[Any]]:
        """SQL `` {keyword} p.slug = ?`` and its parameter for an optional project. Raises NotFound for an unknown one."""
        if project_slug is None:
            return "", []
        self.project_by_slug(project_slug)  # type: ignore[attr-defined]
        return f" {keyword} p.slug = ?", [project_slug]

    def list_issues(self, project_slug: str | None = None, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Return issues, most recently seen first, optionally for one project. Raises NotFound."""
        from .sqlite import _issue_row

        sql = f"SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id"
        where, params = self._project_filter(project_slug, "WHERE")
        sql += where
        sql += " ORDER BY i.last_seen DESC, i.id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        rows = self._run(lambda c: c.execute(sql, params).fetchall())  # type: ignore[attr-defined]
        return [_issue_row(row) for row in rows]

    def get_issue(self, issue_id: int) -> dict[str, Any]:
        """Return one issue. Raises NotFound."""
        from .sqlite import _issue_row

        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            f"SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id WHERE i.id = ?",
            (issue_id,),
        ).fetchone())
        if row is None:
            raise NotFound(f"no issue {issue_id}")
        return _issue_row(row)

    def get_event(self, event_id: str) -> dict[str, Any]:
        """Return a stored event or transaction by id (any project). Raises NotFound."""
        event_id = stored_event_id(event_id)

        def run(conn: sqlite3.Connection) -> Any:
            row = conn.execute(
                "SELECT project_id, event_id, issue_id, 'event' AS kind, data FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()
            return row or conn.execute(
                "SELECT project_id, event_id, NULL AS issue_id, 'transaction' AS kind, data FROM transactions "
                "WHERE event_id = ?", (event_id,)
            ).fetchone()

        row = self._run(run)  # type: ignore[attr-defined]
        if row is None:
            raise NotFound(f"no event {event_id}")
        return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "kind": row[3], "data": orjson.loads(row[4])}

    def latest_event(self, issue_id: int) -> dict[str, Any]:
        """Return the newest event of an issue. Raises NotFound."""
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT project_id, event_id, issue_id, data FROM events WHERE issue_id = ? "
            "ORDER BY timestamp DESC, rowid DESC LIMIT 1", (issue_id,)
        ).fetchone())
        if row is None:
            raise NotFound(f"no events for issue {issue_id}")
        return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "data": orjson.loads(row[3])}

    def list_attachments(self, event_id: str, project_id: int | None = None) -> list[dict[str, Any]]:
        """The attachments of an event (of ``project_id``, or any project), without their data."""
        event_id = stored_event_id(event_id)
        # With a project the (project_id, event_id) index finds them without a scan.
        where, params = ("project_id = ? AND event_id = ?", (project_id, event_id)) if project_id is not None \
            else ("event_id = ?", (event_id,))
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT id, project_id, event_id, filename, content_type, attachment_type, size, received FROM attachments "
            f"WHERE {where} ORDER BY id", params).fetchall())
        names = ("id", "project_id", "event_id", "filename", "content_type", "attachment_type", "size", "received")
        return [dict(zip(names, row)) for row in rows]

    def attachment_data(self, attachment_id: int) -> tuple[dict[str, Any], bytes]:
        """One attachment's metadata and bytes. Raises NotFound."""
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT id, project_id, event_id, filename, content_type, attachment_type, size, data FROM attachments "
            "WHERE id = ?", (attachment_id,)).fetchone())
        if row is None:
            raise NotFound(f"no attachment {attachment_id}")
        names = ("id", "project_id", "event_id", "filename", "content_type", "attachment_type", "size")
        return dict(zip(names, row[:7])), bytes(row[7])

    def list_feedback(self, project_slug: str | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
        """User reports and feedback, newest first, with the issue of the event they are about."""
        sql = ("SELECT f.feedback_id, p.slug, f.kind, f.associated_event_id, e.issue_id, f.name, f.email, f.message, "
               "f.url, f.received FROM feedback f JOIN projects p ON p.id = f.project_id "
               "LEFT JOIN events e ON e.project_id = f.project_id AND e.event_id = f.associated_event_id")
        where, params = self._project_filter(project_slug, "WHERE")
        sql += where
        sql += " ORDER BY f.received DESC LIMIT ?"
        params.append(limit)
        names = ("id", "project", "kind", "event_id", "issue_id", "name", "email", "message", "url", "received")
        return [dict(zip(names, row)) for row in self._run(lambda c: c.execute(sql, params).fetchall())]  # type: ignore[attr-defined]

    def release_health(self, project_slug: str | None = None) -> list[dict[str, Any]]:
        """Per project, release and environment: session totals and the crash-free rate. Raises NotFound."""
        sql = ("SELECT p.slug, h.release, h.environment, sum(started), sum(exited), sum(errored), sum(crashed), "
               "sum(abnormal), min(minute), max(minute) FROM release_health h JOIN projects p ON p.id = h.project_id")
        where, params = self._project_filter(project_slug, "WHERE")
        sql += where
        sql += " GROUP BY p.slug, h.release, h.environment ORDER BY max(minute) DESC"
        rows = self._run(lambda c: c.execute(sql, params).fetchall())  # type: ignore[attr-defined]
        result = []
        for slug, release, environment, started, exited, errored, crashed, abnormal, first, last in rows:
            result.append({
                "project": slug, "release": release, "environment": environment, "started": started,
                "exited": exited, "errored": errored, "crashed": crashed, "abnormal": abnormal,
                "crash_free_rate": round(1 - crashed / started, 6) if started else None,
                "first_seen": first, "last_seen": last,
            })
        return result

    def list_logs(self, project_slug: str | None = None, *, level: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        """Log records, newest first. Raises NotFound for an unknown project."""
        sql = ("SELECT p.slug, l.timestamp, l.level, l.body, l.trace_id, l.span_id, l.attributes FROM logs l "
               "JOIN projects p ON p.id = l.project_id WHERE 1 = 1")
        where, params = self._project_filter(project_slug, "AND")
        sql += where
        if level is not None:
            sql += " AND l.level = ?"
            params.append(level)
        sql += " ORDER BY l.timestamp DESC, l.id DESC LIMIT ?"
        params.append(limit)
        names = ("project", "timestamp", "level", "body", "trace_id", "span_id", "attributes")
        rows = [dict(zip(names, row)) for row in self._run(lambda c: c.execute(sql, params).fetchall())]  # type: ignore[attr-defined]
        for row in rows:
            row["attributes"] = orjson.loads(row["attributes"])
        return rows

    def counts(self) -> dict[str, int]:
        """Return row counts of the main tables (events, transactions, issues)."""
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "transactions", "issues")}
        return self._run(run)  # type: ignore[attr-defined]

    def outcome_series(self, project_ids: list[int] | None, start: int, end: int, interval: int,
                       group_by: tuple[str, ...]) -> list[dict[str, Any]]:
        """Outcome quantities summed per ``interval`` seconds in [start, end), grouped by columns of
        ``group_by`` (any of project, outcome, reason, category). Rows: {"bucket", <groups>, "quantity"}."""
        columns = {"project": "project_id", "outcome": "outcome", "reason": "reason", "category": "category"}
        selected = [columns[name] for name in group_by]
        sql = (f"SELECT (timestamp / {int(interval)}) * {int(interval)} AS bucket"
               + "".join(f", {column}" for column in selected)
               + ", sum(quantity) FROM outcomes WHERE timestamp >= ? AND timestamp < ?")
        params: list[Any] = [start, end]
        if project_ids is not None:
            sql += f" AND project_id IN ({', '.join('?' * len(project_ids))})"
            params += project_ids
        sql += " GROUP BY bucket" + "".join(f", {column}" for column in selected) + " ORDER BY bucket"
        rows = self._run(lambda c: c.execute(sql, params).fetchall())  # type: ignore[attr-defined]
        result = []
        for row in rows:
            entry: dict[str, Any] = {"bucket": row[0], "quantity": row[-1]}
            for name, value in zip(group_by, row[1:-1]):
                entry[name] = Outcome(value).name.lower() if name == "outcome" else value
            result.append(entry)
        return result

    def outcome_totals(self) -> list[dict[str, Any]]:
        """Return outcome quantities summed over time, per project, outcome, reason and category."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT project_id, outcome, reason, category, sum(quantity) FROM outcomes "
            "GROUP BY project_id, outcome, reason, category ORDER BY project_id, outcome, category, reason"
        ).fetchall())
        return [{"project_id": r[0], "outcome": Outcome(r[1]).name.lower(), "reason": r[2], "category": r[3],
                 "quantity": r[4]} for r in rows]
