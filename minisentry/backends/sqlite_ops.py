"""The SQLite store's reads for the web UI's charts and operations pages.

Every read is bounded: by a time window on an indexed column, by a LIMIT, or both, so a page costs
the same on a store with a million events as on one with ten. Tag breakdowns aggregate in SQL over
the newest ``max_events`` events of an issue (``json_each`` over the stored ``tags`` pairs) rather
than loading events into Python.

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

__all__ = ["OpsMixin", "create_ops_indexes"]


def create_ops_indexes(db: Any) -> None:
    """Indexes the operations pages read through (part of the store's migration)."""
    # A monitor's newest check-ins, without scanning every check-in of its project.
    db.execute("CREATE INDEX IF NOT EXISTS check_ins_monitor ON check_ins(project_id, monitor_slug, started)")
    # Release health of the last N days across all projects, without scanning older minutes.
    db.execute("CREATE INDEX IF NOT EXISTS release_health_minute ON release_health(minute)")


class OpsMixin:
    """Event series, tag breakdowns, release health and monitors for the UI (needs the store's ``_run``)."""

    def issue_event_series(self, issue_id: int, start: int, end: int, interval: int) -> dict[int, int]:
        """``{bucket start: events}`` of an issue with a timestamp in [start, end), per ``interval`` seconds."""
        step = max(int(interval), 1)
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            f"SELECT CAST(timestamp / {step} AS INTEGER) * {step}, count(*) FROM events "
            "WHERE issue_id = ? AND timestamp >= ? AND timestamp < ? GROUP BY 1", (issue_id, start, end)).fetchall())
        return {int(bucket): int(count) for bucket, count in rows}

    def issue_tag_counts(self, issue_id: int, *, max_events: int = 1000) -> tuple[int, list[tuple[str, str, int]]]:
        """Over the issue's newest ``max_events`` events: how many there were, and ``(key, value, count)``.

        Counts come from each event's ``tags`` pairs plus its level, release and environment
        columns (unless its tags name them already). Values longer than 200 characters are cut.
        """

        def run(conn: sqlite3.Connection) -> tuple[int, list[tuple[str, str, int]]]:
            recent = ("SELECT rowid AS id, data, level, release, environment FROM events WHERE issue_id = ? "
                      "ORDER BY timestamp DESC, rowid DESC LIMIT ?")
            total = conn.execute(f"SELECT count(*) FROM ({recent})", (issue_id, max_events)).fetchone()[0]
            pairs = conn.execute(
                f"WITH recent AS ({recent}), pairs AS ("
                "  SELECT recent.id AS id, json_extract(t.value, '$[0]') AS k, json_extract(t.value, '$[1]') AS v "
                "  FROM recent, json_each(recent.data, '$.tags') AS t "
                "  WHERE json_type(recent.data, '$.tags') = 'array' AND t.type = 'array' "
                "  UNION ALL SELECT id, 'level', level FROM recent "
                "  UNION ALL SELECT id, 'release', release FROM recent "
                "  UNION ALL SELECT id, 'environment', environment FROM recent) "
                "SELECT k, substr(CAST(v AS TEXT), 1, 200), count(DISTINCT id) FROM pairs "
                "WHERE k IS NOT NULL AND v IS NOT NULL AND typeof(k) = 'text' GROUP BY 1, 2",
                (issue_id, max_events)).fetchall()
            return int(total), [(str(k), str(v), int(n)) for k, v, n in pairs]

        return self._run(run)  # type: ignore[attr-defined]

    def release_health_summary(self, project_id: int | None, since: int, *, limit: int = 50) -> list[dict[str, Any]]:
        """Per project, release and environment with sessions since ``since``: totals, crash-free rate.

        Newest activity first, at most ``limit`` rows.
        """
        sql = ("SELECT p.slug, h.release, h.environment, sum(started), sum(exited), sum(errored), sum(crashed), "
               "sum(abnormal), max(minute) FROM release_health h JOIN projects p ON p.id = h.project_id "
               "WHERE h.minute >= ?")
        params: list[Any] = [since]
        if project_id is not None:
            sql += " AND h.project_id = ?"
            params.append(project_id)
        sql += " GROUP BY p.slug, h.release, h.environment ORDER BY max(minute) DESC LIMIT ?"
        params.append(limit)
        names = ("project", "release", "environment", "started", "exited", "errored", "crashed", "abnormal", "last_seen")
        rows = [dict(zip(names, row)) for row in self._run(lambda c: c.execute(sql, params).fetchall())]  # type: ignore[attr-defined]
        for row in rows:
            started = row["started"]
            row["crash_free_rate"] = 1 - row["crashed"] / started if started else None
        return rows

    def monitors_overview(self, *, limit: int = 100, recent: int = 10) -> list[dict[str, Any]]:
        """At most ``limit`` monitors (by project and slug) with their ``recent`` newest check-ins."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            result = []
            for project_id, project, slug, raw_config, status, last, expected in conn.execute(
                    "SELECT m.project_id, p.slug, m.slug, m.config, m.status, m.last_checkin, m.next_expected "
                    "FROM monitors m JOIN projects p ON p.id = m.project_id ORDER BY m.project_id, m.slug LIMIT ?",
                    (limit,)).fetchall():
                checks = conn.execute(
                    "SELECT status, started, duration, environment FROM check_ins WHERE project_id = ? "
                    "AND monitor_slug = ? ORDER BY started DESC LIMIT ?", (project_id, slug, recent)).fetchall()
                try:
                    config = orjson.loads(raw_config) if raw_config else None
                except orjson.JSONDecodeError:
                    config = None
                result.append({"project": project, "slug": slug, "status": status, "config": config,
                               "last_checkin": last, "next_expected": expected,
                               "recent": [{"status": s, "started": t, "duration": d, "environment": e}
                                          for s, t, d, e in checks]})
            return result

        return self._run(run)  # type: ignore[attr-defined]
