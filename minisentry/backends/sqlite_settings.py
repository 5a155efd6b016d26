"""The SQLite store's ``project_settings`` table: per-project ``filters``/``scrubbing``/``quotas`` overrides.

One row per (project, section), holding the section as JSON exactly as validated by the CLI (see
``project_settings.py``). Triggers bump ``config_version`` on every change, so the watchers of
running servers re-read the table. A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`:
its methods block on disk I/O and raise StorageError (and NotFound for an unknown project).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson

from ..errors import NotFound, StorageError

__all__ = ["ProjectSettingsMixin", "create_project_settings_table"]


def create_project_settings_table(db: Any) -> None:
    """Create the table and its config-version triggers if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS project_settings (project_id INTEGER NOT NULL, section TEXT NOT NULL, "
               "value TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (project_id, section))")
    for action in ("INSERT", "UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER IF NOT EXISTS bump_config_project_settings_{action.lower()} AFTER {action} "
                   "ON project_settings BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END")


class ProjectSettingsMixin:
    """Reads and writes of stored per-project settings (needs the store's ``_run``)."""

    def project_settings(self, project_id: int | None = None) -> dict[int, dict[str, Any]]:
        """Return ``{project_id: {section: value}}`` (one project's, or all); ``{}`` on a file without the table.

        Values are decoded JSON, not validated (the caller parses them). Raises StorageError.
        """

        def run(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
            sql = "SELECT project_id, section, value FROM project_settings"
            try:
                if project_id is None:
                    return conn.execute(sql).fetchall()
                return conn.execute(sql + " WHERE project_id = ?", (project_id,)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

        result: dict[int, dict[str, Any]] = {}
        for pid, section, value in self._run(run):  # type: ignore[attr-defined]
            try:
                result.setdefault(pid, {})[section] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise StorageError(f"project {pid}'s stored {section} is not JSON: {exc}") from exc
        return result

    def set_project_setting(self, project_id: int, section: str, value: Any | None) -> bool:
        """Store a project's section (a JSON-serializable value validated by the caller), or delete it (None).

        Returns whether anything changed. Raises NotFound for an unknown project, StorageError.
        """
        encoded = None if value is None else orjson.dumps(value).decode()

        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
                conn.execute("ROLLBACK")
                raise NotFound(f"no project {project_id}")
            row = conn.execute("SELECT value FROM project_settings WHERE project_id = ? AND section = ?",
                               (project_id, section)).fetchone()
            current = row[0] if row else None
            if current == encoded:
                conn.execute("ROLLBACK")
                return False
            if encoded is None:
                conn.execute("DELETE FROM project_settings WHERE project_id = ? AND section = ?", (project_id, section))
            else:
                conn.execute("INSERT INTO project_settings(project_id, section, value, updated) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(project_id, section) DO UPDATE SET value = excluded.value, "
                             "updated = excluded.updated", (project_id, section, encoded, time.time()))
            conn.execute("COMMIT")
            return True

        return self._run(run)  # type: ignore[attr-defined]
