"""The SQLite store's cron monitors: ``monitors`` and their ``check_ins``.

The store stage records check-ins in order (``record_check_ins``); each updates its monitor's
status, config and next expected time. The monitor clock calls ``detect_missed``, which records a
``missed`` check-in for every expected time that passed its margin (at most 100 per monitor per
call) and times out ``in_progress`` check-ins that ran past ``max_runtime``. Failed check-ins are
logged for alerts by triggers (``sqlite_alerts.py``).

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import orjson

from ..schedules import parse_schedule

__all__ = ["MonitorsMixin", "create_monitor_tables"]


def create_monitor_tables(db: Any) -> None:
    """Create ``monitors`` and ``check_ins`` if missing (part of the store's migration)."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS monitors (
                project_id INTEGER NOT NULL, slug TEXT NOT NULL, config TEXT, status TEXT NOT NULL,
                last_checkin REAL, next_expected REAL, PRIMARY KEY (project_id, slug))"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS check_ins (
                project_id INTEGER NOT NULL, check_in_id TEXT NOT NULL, monitor_slug TEXT NOT NULL,
                status TEXT NOT NULL, environment TEXT NOT NULL, duration REAL, started REAL NOT NULL,
                updated REAL NOT NULL, PRIMARY KEY (project_id, check_in_id))"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS check_ins_open ON check_ins(status, started)")


class MonitorsMixin:
    """Recording check-ins, detecting missed ones and listing monitors (needs the store's ``_run``)."""

    def record_check_ins(self, check_ins: list[Any]) -> None:
        """Record check-ins (``monitors.CheckIn``) in order, in one transaction, updating their monitors."""
        self._run(self._record_check_ins, check_ins)  # type: ignore[attr-defined]

    def _record_check_ins(self, conn: sqlite3.Connection, check_ins: list[Any]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for check_in in check_ins:
            key = (check_in.project_id, check_in.monitor_slug)
            row = conn.execute("SELECT config FROM monitors WHERE project_id = ? AND slug = ?", key).fetchone()
            config = check_in.config if check_in.config is not None else (orjson.loads(row[0]) if row and row[0]
                                                                         else None)
            if row is None:
                conn.execute("INSERT INTO monitors(project_id, slug, config, status) VALUES (?, ?, ?, 'active')",
                             (*key, orjson.dumps(config).decode() if config else None))
            elif check_in.config is not None:
                conn.execute("UPDATE monitors SET config = ? WHERE project_id = ? AND slug = ?",
                             (orjson.dumps(config).decode(), *key))
            existing = conn.execute("SELECT status, started FROM check_ins WHERE project_id = ? AND check_in_id = ?",
                                    (check_in.project_id, check_in.check_in_id)).fetchone()
            if existing is None:
                conn.execute("INSERT INTO check_ins(project_id, check_in_id, monitor_slug, status, environment, duration, "
                             "started, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (check_in.project_id, check_in.check_in_id, check_in.monitor_slug, check_in.status,
                              check_in.environment, check_in.duration, check_in.received, check_in.received))
            elif existing[0] == "in_progress":
                duration = check_in.duration if check_in.duration is not None else check_in.received - existing[1]
                conn.execute("UPDATE check_ins SET status = ?, duration = ?, updated = ? WHERE project_id = ? "
                             "AND check_in_id = ?", (check_in.status, duration, check_in.received,
                                                     check_in.project_id, check_in.check_in_id))
            next_expected = None
            if config is not None:
                next_expected = parse_schedule(config["schedule"], config["timezone"]).next_after(check_in.received)
            status = "error" if check_in.status == "error" else "ok" if check_in.status == "ok" else "in_progress"
            conn.execute("UPDATE monitors SET status = ?, last_checkin = ?, next_expected = coalesce(?, next_expected) "
                         "WHERE project_id = ? AND slug = ?", (status, check_in.received, next_expected, *key))
        conn.execute("COMMIT")

    def detect_missed(self, now: float) -> int:
        """Mark overdue monitors ``missed`` and overlong ``in_progress`` check-ins ``timeout``; return how many."""
        return self._run(self._detect_missed, now)  # type: ignore[attr-defined]

    def _detect_missed(self, conn: sqlite3.Connection, now: float) -> int:
        conn.execute("BEGIN IMMEDIATE")
        changed = 0
        for project_id, slug, raw_config, next_expected in conn.execute(
                "SELECT project_id, slug, config, next_expected FROM monitors WHERE next_expected IS NOT NULL "
                "AND config IS NOT NULL").fetchall():
            config = orjson.loads(raw_config)
            margin = (config.get("checkin_margin") or 1) * 60
            schedule = parse_schedule(config["schedule"], config["timezone"])
            missed = 0
            # Each expected time that passed its margin without a check-in is one missed check-in
            # (bounded: a monitor that slept for long records at most 100 of them at once).
            while next_expected + margin < now and missed < 100:
                conn.execute("INSERT OR IGNORE INTO check_ins(project_id, check_in_id, monitor_slug, status, "
                             "environment, duration, started, updated) VALUES (?, ?, ?, 'missed', 'production', NULL, ?, ?)",
                             (project_id, uuid.uuid5(uuid.NAMESPACE_URL, f"{project_id}/{slug}/{next_expected}").hex,
                              slug, next_expected, now))
                next_expected = schedule.next_after(next_expected)
                missed += 1
            if missed:
                conn.execute("UPDATE monitors SET status = 'missed', next_expected = ? WHERE project_id = ? AND slug = ?",
                             (next_expected, project_id, slug))
                changed += missed
            max_runtime = config.get("max_runtime")
            if max_runtime:
                changed += conn.execute(
                    "UPDATE check_ins SET status = 'timeout', updated = ? WHERE project_id = ? AND monitor_slug = ? "
                    "AND status = 'in_progress' AND started < ?", (now, project_id, slug, now - max_runtime * 60)
                ).rowcount
        conn.execute("COMMIT")
        return changed

    def list_monitors(self) -> list[dict[str, Any]]:
        """Every monitor with its status, schedule, last check-in, next expected time and recent check-ins."""
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            result = []
            for project_id, slug, raw_config, status, last, expected in conn.execute(
                    "SELECT project_id, slug, config, status, last_checkin, next_expected FROM monitors "
                    "ORDER BY project_id, slug").fetchall():
                recent = conn.execute("SELECT status, started, duration FROM check_ins WHERE project_id = ? AND "
                                      "monitor_slug = ? ORDER BY started DESC LIMIT 10", (project_id, slug)).fetchall()
                result.append({"project_id": project_id, "slug": slug, "status": status,
                               "config": orjson.loads(raw_config) if raw_config else None, "last_checkin": last,
                               "next_expected": expected,
                               "recent": [{"status": r[0], "started": r[1], "duration": r[2]} for r in recent]})
            return result
        return self._run(run)  # type: ignore[attr-defined]
