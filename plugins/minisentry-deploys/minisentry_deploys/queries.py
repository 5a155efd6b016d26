"""The deploy queries the CLI commands and the read-API route share (plain sqlite3, read only)."""

from __future__ import annotations

import sqlite3
from typing import Any

TABLE = "plugin_deploys"
_COLUMNS = "project_id, release, environment, timestamp, url"


class NoSuchIssue(LookupError):
    """The issue asked about does not exist."""


def _rows(conn: sqlite3.Connection, sql: str, params: tuple) -> list[dict[str, Any]]:
    try:
        cursor = conn.execute(sql, params)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # no server with this plugin has written the store yet
        raise
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def list_deploys(conn: sqlite3.Connection, project_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Deploy markers, newest first, optionally of one project. Blocks; raises sqlite3.Error."""
    where, params = ("WHERE project_id = ?", (project_id,)) if project_id is not None else ("", ())
    return _rows(conn, f"SELECT {_COLUMNS} FROM {TABLE} {where} ORDER BY timestamp DESC LIMIT ?", (*params, limit))


def deploy_before_issue(conn: sqlite3.Connection, issue_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The issue (project, first seen) and the last deploy of its project before it. Raises NoSuchIssue."""
    issue = _rows(conn, "SELECT project_id, first_seen FROM issues WHERE id = ?", (issue_id,))
    if not issue:
        raise NoSuchIssue(f"no issue {issue_id}")
    rows = _rows(conn, f"SELECT {_COLUMNS} FROM {TABLE} WHERE project_id = ? AND timestamp <= ? "
                       f"ORDER BY timestamp DESC LIMIT 1", (issue[0]["project_id"], issue[0]["first_seen"]))
    return issue[0], (rows[0] if rows else None)


def deploys_around(conn: sqlite3.Connection, project_id: int, timestamp: float, *, before: int = 3,
                   after: int = 2) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A project's last ``before`` deploys at or before ``timestamp`` (newest first: the first one is
    the deploy the moment came after) and its first ``after`` deploys after it (oldest first). Blocks;
    raises sqlite3.Error."""
    earlier = _rows(conn, f"SELECT {_COLUMNS} FROM {TABLE} WHERE project_id = ? AND timestamp <= ? "
                          f"ORDER BY timestamp DESC LIMIT ?", (project_id, timestamp, before))
    later = _rows(conn, f"SELECT {_COLUMNS} FROM {TABLE} WHERE project_id = ? AND timestamp > ? "
                        f"ORDER BY timestamp ASC LIMIT ?", (project_id, timestamp, after))
    return earlier, later
