"""The SQLite store's operator controls: kill-switches and lane overrides.

Kill-switches are stored as JSON values validated by their caller (``killswitches.py``); ``[]``
disables one. A lane override pins a project to the fast or the slow lane until it is cleared.
Both tables came with later schema versions, so a read-only store on an older file reads them as
empty.

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..errors import StorageError

__all__ = ["ControlsMixin", "create_killswitch_table", "create_lane_override_table"]


def create_killswitch_table(db: Any) -> None:
    """Create ``killswitches`` if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS killswitches (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL)")


def create_lane_override_table(db: Any) -> None:
    """Create ``lane_overrides`` if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS lane_overrides (project_id INTEGER PRIMARY KEY, "
               "lane TEXT NOT NULL CHECK (lane IN ('fast', 'slow')), updated REAL)")


class ControlsMixin:
    """Kill-switches and lane overrides (needs the store's ``_run``)."""

    def killswitch_values(self) -> dict[str, list]:
        """Return ``{name: value}`` of every stored kill-switch, values as decoded JSON (unvalidated).

        A read-only store on a file older than the killswitches table has none: returns ``{}``.
        """

        def run(conn: sqlite3.Connection) -> dict[str, list]:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'killswitches'").fetchone() is None:
                return {}
            return {row[0]: orjson.loads(row[1]) for row in conn.execute("SELECT name, value FROM killswitches")}

        try:
            return self._run(run)  # type: ignore[attr-defined]
        except orjson.JSONDecodeError as exc:
            raise StorageError(f"store {self.path}: a kill-switch value is not JSON: {exc}") from exc  # type: ignore[attr-defined]

    def set_killswitch(self, name: str, conditions: list[dict[str, Any]]) -> None:
        """Store a kill-switch's value (a JSON-serializable list, validated by the caller); ``[]`` disables it."""
        from .sqlite import _now

        value = orjson.dumps(conditions).decode()
        self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "INSERT INTO killswitches(name, value, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (name, value, _now()),
        ))

    def lane_overrides(self) -> dict[int, str]:
        """Return ``{project_id: "fast" | "slow"}`` pinned by operators ({} on a file without the table)."""

        def run(conn: sqlite3.Connection) -> dict[int, str]:
            try:
                return dict(conn.execute("SELECT project_id, lane FROM lane_overrides").fetchall())
            except sqlite3.OperationalError:
                return {}

        return self._run(run)  # type: ignore[attr-defined]

    def set_lane_override(self, project_id: int, lane: str | None) -> None:
        """Pin a project to ``"fast"`` or ``"slow"``, or (None) let its time budget decide again."""
        from .sqlite import _now

        def run(conn: sqlite3.Connection) -> None:
            if lane is None:
                conn.execute("DELETE FROM lane_overrides WHERE project_id = ?", (project_id,))
            else:
                conn.execute("INSERT INTO lane_overrides(project_id, lane, updated) VALUES (?, ?, ?) "
                             "ON CONFLICT(project_id) DO UPDATE SET lane = excluded.lane, updated = excluded.updated",
                             (project_id, lane, _now()))

        self._run(run)  # type: ignore[attr-defined]
