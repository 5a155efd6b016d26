"""The SQLite event store: projects, keys, issues, events, transactions, outcomes and kill-switches.

One writer (the store stage) writes batches in single transactions; readers (CLI, API, the relay's
key lookup) open their own connections. WAL mode lets them read while the writer writes. Every write
is idempotent: an event id already stored for its project is skipped, and its issue count is not
bumped again, so redelivered messages are harmless. What a new event does to its issue's status
(a resolved issue reopens as a regression, an ignored one whose condition expired is unignored) is
decided by ``issue_status.on_event``; new issues, regressions and unignored issues are appended to
the issue activity log (``sqlite_activity.py``) in the same transaction.

Methods block on disk I/O; async callers run them in a worker thread.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import orjson
import sqlite_utils

from ..errors import NotFound, StorageError
from ..issue_status import load_details, on_event
from ..messages import ProcessedEvent
from ..outcomes import Outcome, OutcomeRow, category_of_item
from ..schedules import parse_schedule
from .sqlite_activity import ActivityMixin, create_activity_tables, record_activity
from .sqlite_alerts import MonitorFailuresMixin, create_monitor_failure_tables
from .sqlite_issues import ISSUE_COLUMNS, IssuesMixin, migrate_issue_status
from .sqlite_issue_events import IssueEventsMixin
from .sqlite_plugin_ids import create_plugin_id_table, first_delivery
from .sqlite_settings import ProjectSettingsMixin, create_project_settings_table
from .sqlite_web import WebMixin, create_web_tables
from .sqlite_retention import RetentionMixin, create_retention_indexes
from .sqlite_ops import OpsMixin, create_ops_indexes
from .sqlite_tokens import TokensMixin, create_token_tables
from .sqlite_issue_events import stored_event_id

__all__ = ["SqliteStore"]

# 2: adds the killswitches table.
# 3: adds config_version, bumped by triggers on every change of projects and keys.
# 4: adds lane_overrides (operators pinning projects to the fast or slow lane).
# 5: adds release_health (session counts per project, release, environment and minute).
# 6: adds feedback (user reports and user feedback, linked to their event).
# 7: adds attachments (files sent with events).
# 8: adds monitors and check_ins (cron monitoring).
# 9: adds logs (records of log item containers).
# 10: adds project_settings (per-project filters, scrubbing, quotas), bumping config_version.
# 11: adds users and web_sessions (the web UI).
# 12-13: adds lane_overrides, issue_activity and activity_cursors (the activity log).
# 14: adds indexes for the web UI's operations pages (check_ins per monitor, release_health by minute).
# 15: adds monitor_failures and its triggers on check_ins (alerts).
# 16: adds issues.status_details (ignore and next-release conditions) and api_tokens.
# 17: adds the index events(project_id, timestamp) for the events API.
_SCHEMA_VERSION = 17


def _now() -> float:
    return time.time()


class SqliteStore(ProjectSettingsMixin, WebMixin, RetentionMixin, ActivityMixin, OpsMixin, MonitorFailuresMixin,
                  IssuesMixin, IssueEventsMixin, TokensMixin):
    """The event store in one SQLite file. Thread-safe: one lock serializes use of its connection.

    Raises StorageError (translated from sqlite3) from every method on I/O or integrity failures.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> "SqliteStore":
        """Open (and for a writer, create and migrate) the database file."""
        conn: sqlite3.Connection | None = None
        try:
            if self.readonly:
                if not self.path.exists():
                    raise StorageError(f"no store at {self.path} (has `minisentry serve` run with this config?)")
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.row_factory = sqlite3.Row
            self._conn = conn
            if not self.readonly:
                self._migrate(sqlite_utils.Database(conn))
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
                self._conn = None
            if isinstance(exc, OSError):
                raise StorageError(f"cannot create store folder for {self.path}: {exc}") from exc
            raise StorageError(f"cannot open store {self.path}: {exc}") from exc
        return self

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "SqliteStore":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self, db: sqlite_utils.Database) -> None:
        if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
            return
        db["projects"].create({"id": int, "slug": str, "created": float}, pk="id", not_null={"slug"}, if_not_exists=True)
        db["projects"].create_index(["slug"], unique=True, if_not_exists=True)
        db["project_keys"].create(
            {"public_key": str, "project_id": int, "is_active": int, "created": float},
            pk="public_key", foreign_keys=[("project_id", "projects", "id")], if_not_exists=True,
        )
        db["issues"].create(
            {"id": int, "project_id": int, "hash": str, "title": str, "culprit": str, "level": str,
             "metadata": str, "count": int, "first_seen": float, "last_seen": float, "status": str},
            pk="id", if_not_exists=True,
        )
        db["issues"].create_index(["project_id", "hash"], unique=True, if_not_exists=True)
        db["issues"].create_index(["project_id", "last_seen"], if_not_exists=True)
        db.execute(
            """CREATE TABLE IF NOT EXISTS events (
                project_id INTEGER NOT NULL, event_id TEXT NOT NULL, issue_id INTEGER,
                timestamp REAL, received REAL, level TEXT, title TEXT, platform TEXT,
                release TEXT, environment TEXT, data TEXT NOT NULL,
                PRIMARY KEY (project_id, event_id))"""
        )
        db["events"].create_index(["event_id"], if_not_exists=True)
        db["events"].create_index(["issue_id", "timestamp"], if_not_exists=True)
        db.execute(
            """CREATE TABLE IF NOT EXISTS transactions (
                project_id INTEGER NOT NULL, event_id TEXT NOT NULL, name TEXT, op TEXT,
                start_timestamp REAL, timestamp REAL, duration_ms REAL, received REAL, data TEXT NOT NULL,
                PRIMARY KEY (project_id, event_id))"""
        )
        db.execute(
            """CREATE TABLE IF NOT EXISTS outcomes (
                timestamp INTEGER NOT NULL, project_id INTEGER NOT NULL, outcome INTEGER NOT NULL,
                reason TEXT NOT NULL, category TEXT NOT NULL, quantity INTEGER NOT NULL,
                PRIMARY KEY (timestamp, project_id, outcome, reason, category))"""
        )
        # Every statement above is IF NOT EXISTS, so an older file runs this whole block again and
        # only gains what it lacks (version 1 → 2: this table).
        db.execute("CREATE TABLE IF NOT EXISTS killswitches (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL)")
        # Every change of a project or key bumps one counter, which running relays poll cheaply and
        # then reload their key cache: the store tells the cache, no entry waits to expire.
        db.execute("CREATE TABLE IF NOT EXISTS config_version "
                   "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
        db.execute("INSERT OR IGNORE INTO config_version(id, version) VALUES (1, 0)")
        db.execute(
            """CREATE TABLE IF NOT EXISTS release_health (
                project_id INTEGER NOT NULL, release TEXT NOT NULL, environment TEXT NOT NULL,
                minute INTEGER NOT NULL, started INTEGER NOT NULL, exited INTEGER NOT NULL,
                errored INTEGER NOT NULL, crashed INTEGER NOT NULL, abnormal INTEGER NOT NULL,
                PRIMARY KEY (project_id, release, environment, minute))"""
        )
        db.execute(
            """CREATE TABLE IF NOT EXISTS feedback (
                project_id INTEGER NOT NULL, feedback_id TEXT NOT NULL, kind TEXT NOT NULL,
                associated_event_id TEXT, name TEXT, email TEXT, message TEXT NOT NULL, url TEXT,
                received REAL NOT NULL, PRIMARY KEY (project_id, feedback_id))"""
        )
        db.execute(
            """CREATE TABLE IF NOT EXISTS attachments (
                id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, event_id TEXT NOT NULL, filename TEXT NOT NULL,
                content_type TEXT NOT NULL, attachment_type TEXT NOT NULL, size INTEGER NOT NULL,
                data BLOB NOT NULL, received REAL NOT NULL)"""
        )
        db.execute("CREATE INDEX IF NOT EXISTS attachments_event ON attachments(project_id, event_id)")
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
        db.execute(
            """CREATE TABLE IF NOT EXISTS logs (
                id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, timestamp REAL NOT NULL, level TEXT NOT NULL,
                body TEXT NOT NULL, trace_id TEXT, span_id TEXT, attributes TEXT NOT NULL)"""
        )
        db.execute("CREATE INDEX IF NOT EXISTS logs_time ON logs(project_id, timestamp)")
        db.execute("CREATE TABLE IF NOT EXISTS lane_overrides (project_id INTEGER PRIMARY KEY, "
                   "lane TEXT NOT NULL CHECK (lane IN ('fast', 'slow')), updated REAL)")
        for table in ("projects", "project_keys"):
            for action in ("INSERT", "UPDATE", "DELETE"):
                db.execute(f"CREATE TRIGGER IF NOT EXISTS bump_config_{table}_{action.lower()} AFTER {action} ON {table} "
                           "BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END")
        create_project_settings_table(db)
        create_web_tables(db)
        create_retention_indexes(db)
        create_activity_tables(db)
        migrate_issue_status(db)
        create_token_tables(db)
        create_plugin_id_table(db)
        create_ops_indexes(db)
        create_monitor_failure_tables(db)
        db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("store is not open")
        return self._conn

    def _run(self, fn, *args: Any) -> Any:
        with self._lock:
            conn = self._db()
            try:
                return fn(conn, *args)
            except BaseException as exc:
                # Whatever failed mid-transaction (sqlite, or data that would not serialize), roll
                # back: a transaction left open would make every later call fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"store {self.path}: {exc}") from exc
                raise

    # -- projects and keys --------------------------------------------------------------------

    def seed_projects(self, projects: Iterable[Any]) -> None:
        """Insert or update the configured projects and their keys (config is the source of truth)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            for project in projects:
                conn.execute(
                    "INSERT INTO projects(id, slug, created) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET slug = excluded.slug",
                    (project.id, project.slug, _now()),
                )
                for key in project.keys:
                    conn.execute(
                        "INSERT INTO project_keys(public_key, project_id, is_active, created) VALUES (?, ?, 1, ?) "
                        "ON CONFLICT(public_key) DO UPDATE SET project_id = excluded.project_id",
                        (key, project.id, _now()),
                    )
            conn.execute("COMMIT")

        self._run(run)

    def create_project(self, slug: str) -> tuple[int, str]:
        """Create a project with one new key; return ``(project_id, public_key)``.

        Raises StorageError if the slug is taken.
        """

        def run(conn: sqlite3.Connection) -> tuple[int, str]:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT 1 FROM projects WHERE slug = ?", (slug,)).fetchone():
                conn.execute("ROLLBACK")
                raise StorageError(f"project {slug!r} already exists")
            project_id = conn.execute("INSERT INTO projects(slug, created) VALUES (?, ?)", (slug, _now())).lastrowid
            key = secrets.token_hex(16)
            conn.execute(
                "INSERT INTO project_keys(public_key, project_id, is_active, created) VALUES (?, ?, 1, ?)",
                (key, project_id, _now()),
            )
            conn.execute("COMMIT")
            return project_id, key

        return self._run(run)

    def set_key_active(self, public_key: str, active: bool) -> None:
        """Enable or disable a public key. Raises NotFound for an unknown key."""

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE project_keys SET is_active = ? WHERE public_key = ?",
                                (int(active), public_key)).rowcount

        if self._run(run) == 0:
            raise NotFound(f"no key {public_key}")

    def lane_overrides(self) -> dict[int, str]:
        """Return ``{project_id: "fast" | "slow"}`` pinned by operators ({} on a file without the table)."""

        def run(conn: sqlite3.Connection) -> dict[int, str]:
            try:
                return dict(conn.execute("SELECT project_id, lane FROM lane_overrides").fetchall())
            except sqlite3.OperationalError:
                return {}

        return self._run(run)

    def set_lane_override(self, project_id: int, lane: str | None) -> None:
        """Pin a project to ``"fast"`` or ``"slow"``, or (None) let its time budget decide again."""

        def run(conn: sqlite3.Connection) -> None:
            if lane is None:
                conn.execute("DELETE FROM lane_overrides WHERE project_id = ?", (project_id,))
            else:
                conn.execute("INSERT INTO lane_overrides(project_id, lane, updated) VALUES (?, ?, ?) "
                             "ON CONFLICT(project_id) DO UPDATE SET lane = excluded.lane, updated = excluded.updated",
                             (project_id, lane, _now()))

        self._run(run)

    def config_version(self) -> int:
        """Return the counter bumped by every change of projects, keys and project settings (0 on a file without one)."""

        def run(conn: sqlite3.Connection) -> int:
            try:
                row = conn.execute("SELECT version FROM config_version WHERE id = 1").fetchone()
            except sqlite3.OperationalError:
                return 0
            return row[0] if row else 0

        return self._run(run)

    def project_keys(self) -> dict[str, tuple[int, bool]]:
        """Return ``{public_key: (project_id, is_active)}`` for every key."""
        rows = self._run(lambda c: c.execute("SELECT public_key, project_id, is_active FROM project_keys").fetchall())
        return {row[0]: (row[1], bool(row[2])) for row in rows}

    def list_projects(self) -> list[dict[str, Any]]:
        """Return every project with its keys, ordered by id."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            projects = [dict(row) for row in conn.execute("SELECT id, slug, created FROM projects ORDER BY id")]
            keys: dict[int, list[str]] = {}
            for row in conn.execute("SELECT public_key, project_id FROM project_keys WHERE is_active ORDER BY created"):
                keys.setdefault(row[1], []).append(row[0])
            for project in projects:
                project["keys"] = keys.get(project["id"], [])
            return projects

        return self._run(run)

    def project_by_slug(self, slug: str) -> dict[str, Any]:
        """Return one project by slug. Raises NotFound."""
        row = self._run(lambda c: c.execute("SELECT id, slug, created FROM projects WHERE slug = ?", (slug,)).fetchone())
        if row is None:
            raise NotFound(f"no project {slug!r}")
        return dict(row)

    # -- writes from the store stage ----------------------------------------------------------

    def write_batch(self, events: list[ProcessedEvent], outcomes: list[OutcomeRow]) -> list[bool]:
        """Store events and add outcome counts in one transaction; return which events were new.

        An event whose (project, event id) is already stored is skipped; an ``accepted`` outcome is
        counted for each new one.
        """
        return self._run(self._write_batch, events, outcomes)

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

    def migrate_plugins(self, item_types: Iterable[Any]) -> None:
        """Run each plugin item type's ``migrate(db)`` (sqlite-utils Database on this file). Blocks.

        Raises StorageError for SQLite failures; a plugin's other exceptions pass through (the
        Pipeline turns them into PluginError at startup).
        """
        def run(conn: sqlite3.Connection) -> None:
            for item_type in item_types:
                item_type.migrate(sqlite_utils.Database(conn))
        self._run(run)

    def read_plugin(self, read: Any) -> Any:
        """Return ``read(db)`` with a sqlite-utils Database on this file (a plugin's read route). Blocks.

        Raises StorageError for SQLite failures; the plugin's other exceptions pass through.
        """
        return self._run(lambda conn: read(sqlite_utils.Database(conn)))

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
        return self._run(run)

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

        self._run(run)

    def record_check_ins(self, check_ins: list[Any]) -> None:
        """Record check-ins (``monitors.CheckIn``) in order, in one transaction, updating their monitors."""
        self._run(self._record_check_ins, check_ins)

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

    def write_logs(self, records: list[Any]) -> None:
        """Store log records (``logs.LogRecord``) in one transaction."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO logs(project_id, timestamp, level, body, trace_id, span_id, attributes) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(r.project_id, r.timestamp, r.level, r.body, r.trace_id, r.span_id, r.attributes)
                              for r in records])
            conn.execute("COMMIT")

        self._run(run)

    def _project_filter(self, project_slug: str | None, keyword: str) -> tuple[str, list[Any]]:
        """SQL `` {keyword} p.slug = ?`` and its parameter for an optional project. Raises NotFound for an unknown one."""
        if project_slug is None:
            return "", []
        self.project_by_slug(project_slug)
        return f" {keyword} p.slug = ?", [project_slug]

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
        rows = [dict(zip(names, row)) for row in self._run(lambda c: c.execute(sql, params).fetchall())]
        for row in rows:
            row["attributes"] = orjson.loads(row["attributes"])
        return rows

    def detect_missed(self, now: float) -> int:
        """Mark overdue monitors ``missed`` and overlong ``in_progress`` check-ins ``timeout``; return how many."""
        return self._run(self._detect_missed, now)

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
        return self._run(run)

    def list_attachments(self, event_id: str, project_id: int | None = None) -> list[dict[str, Any]]:
        """The attachments of an event (of ``project_id``, or any project), without their data."""
        event_id = stored_event_id(event_id)
        # With a project the (project_id, event_id) index finds them without a scan.
        where, params = ("project_id = ? AND event_id = ?", (project_id, event_id)) if project_id is not None \
            else ("event_id = ?", (event_id,))
        rows = self._run(lambda c: c.execute(
            "SELECT id, project_id, event_id, filename, content_type, attachment_type, size, received FROM attachments "
            f"WHERE {where} ORDER BY id", params).fetchall())
        names = ("id", "project_id", "event_id", "filename", "content_type", "attachment_type", "size", "received")
        return [dict(zip(names, row)) for row in rows]

    def attachment_data(self, attachment_id: int) -> tuple[dict[str, Any], bytes]:
        """One attachment's metadata and bytes. Raises NotFound."""
        row = self._run(lambda c: c.execute(
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
        return [dict(zip(names, row)) for row in self._run(lambda c: c.execute(sql, params).fetchall())]

    def release_health(self, project_slug: str | None = None) -> list[dict[str, Any]]:
        """Per project, release and environment: session totals and the crash-free rate. Raises NotFound."""
        sql = ("SELECT p.slug, h.release, h.environment, sum(started), sum(exited), sum(errored), sum(crashed), "
               "sum(abnormal), min(minute), max(minute) FROM release_health h JOIN projects p ON p.id = h.project_id")
        where, params = self._project_filter(project_slug, "WHERE")
        sql += where
        sql += " GROUP BY p.slug, h.release, h.environment ORDER BY max(minute) DESC"
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        result = []
        for slug, release, environment, started, exited, errored, crashed, abnormal, first, last in rows:
            result.append({
                "project": slug, "release": release, "environment": environment, "started": started,
                "exited": exited, "errored": errored, "crashed": crashed, "abnormal": abnormal,
                "crash_free_rate": round(1 - crashed / started, 6) if started else None,
                "first_seen": first, "last_seen": last,
            })
        return result

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

    # -- kill-switches --------------------------------------------------------------------------

    def killswitch_values(self) -> dict[str, list]:
        """Return ``{name: value}`` of every stored kill-switch, values as decoded JSON (unvalidated).

        A read-only store on a file older than the killswitches table has none: returns ``{}``.
        """

        def run(conn: sqlite3.Connection) -> dict[str, list]:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'killswitches'").fetchone() is None:
                return {}
            return {row[0]: orjson.loads(row[1]) for row in conn.execute("SELECT name, value FROM killswitches")}

        try:
            return self._run(run)
        except orjson.JSONDecodeError as exc:
            raise StorageError(f"store {self.path}: a kill-switch value is not JSON: {exc}") from exc

    def set_killswitch(self, name: str, conditions: list[dict[str, Any]]) -> None:
        """Store a kill-switch's value (a JSON-serializable list, validated by the caller); ``[]`` disables it."""
        value = orjson.dumps(conditions).decode()
        self._run(lambda c: c.execute(
            "INSERT INTO killswitches(name, value, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (name, value, _now()),
        ))

    # -- reads for the CLI and API --------------------------------------------------------------

    def list_issues(self, project_slug: str | None = None, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Return issues, most recently seen first, optionally for one project. Raises NotFound."""
        sql = f"SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id"
        where, params = self._project_filter(project_slug, "WHERE")
        sql += where
        sql += " ORDER BY i.last_seen DESC, i.id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        return [_issue_row(row) for row in rows]

    def get_issue(self, issue_id: int) -> dict[str, Any]:
        """Return one issue. Raises NotFound."""
        row = self._run(lambda c: c.execute(
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

        row = self._run(run)
        if row is None:
            raise NotFound(f"no event {event_id}")
        return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "kind": row[3], "data": orjson.loads(row[4])}

    def latest_event(self, issue_id: int) -> dict[str, Any]:
        """Return the newest event of an issue. Raises NotFound."""
        row = self._run(lambda c: c.execute(
            "SELECT project_id, event_id, issue_id, data FROM events WHERE issue_id = ? "
            "ORDER BY timestamp DESC, rowid DESC LIMIT 1", (issue_id,)
        ).fetchone())
        if row is None:
            raise NotFound(f"no events for issue {issue_id}")
        return {"project_id": row[0], "event_id": row[1], "issue_id": row[2], "data": orjson.loads(row[3])}

    def counts(self) -> dict[str, int]:
        """Return row counts of the main tables (events, transactions, issues)."""
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("events", "transactions", "issues")}
        return self._run(run)

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
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        result = []
        for row in rows:
            entry: dict[str, Any] = {"bucket": row[0], "quantity": row[-1]}
            for name, value in zip(group_by, row[1:-1]):
                entry[name] = Outcome(value).name.lower() if name == "outcome" else value
            result.append(entry)
        return result

    def outcome_totals(self) -> list[dict[str, Any]]:
        """Return outcome quantities summed over time, per project, outcome, reason and category."""
        rows = self._run(lambda c: c.execute(
            "SELECT project_id, outcome, reason, category, sum(quantity) FROM outcomes "
            "GROUP BY project_id, outcome, reason, category ORDER BY project_id, outcome, category, reason"
        ).fetchall())
        return [{"project_id": r[0], "outcome": Outcome(r[1]).name.lower(), "reason": r[2], "category": r[3],
                 "quantity": r[4]} for r in rows]


def _issue_row(row: sqlite3.Row) -> dict[str, Any]:
    issue = dict(row)
    issue["metadata"] = orjson.loads(issue["metadata"]) if issue["metadata"] else {}
    issue["status_details"] = load_details(issue.get("status_details"))
    return issue
