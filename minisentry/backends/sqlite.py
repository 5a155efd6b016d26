"""The SQLite event store: its connection, schema migration, projects and keys.

One writer (the store stage) writes batches in single transactions; readers (CLI, API, the relay's
key lookup) open their own connections. WAL mode lets them read while the writer writes.

:class:`SqliteStore` is composed of mixins in sibling modules, each with its part of the schema
(a ``create_*`` function that ``_migrate`` calls): the write path (``sqlite_writes.py``: events,
outcomes, sessions, logs, plugin records; every write idempotent), reads for the CLI and API
(``sqlite_reads.py``), cron monitors (``sqlite_monitors.py``), kill-switches and lane overrides
(``sqlite_controls.py``), issue triage and the web UI (``sqlite_issues.py``, ``sqlite_issue_events.py``,
``sqlite_web.py``, ``sqlite_ops.py``), the activity log, alerts, settings, tokens and retention.

Methods block on disk I/O; async callers run them in a worker thread.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import orjson
import sqlite_utils

from ..errors import NotFound, StorageError
from ..issue_status import load_details
from .sqlite_activity import ActivityMixin, create_activity_tables
from .sqlite_alerts import MonitorFailuresMixin, create_monitor_failure_tables
from .sqlite_controls import ControlsMixin, create_killswitch_table, create_lane_override_table
from .sqlite_issues import IssuesMixin, migrate_issue_status
from .sqlite_issue_events import IssueEventsMixin
from .sqlite_monitors import MonitorsMixin, create_monitor_tables
from .sqlite_plugin_ids import create_plugin_id_table
from .sqlite_reads import EventReadsMixin
from .sqlite_settings import ProjectSettingsMixin, create_project_settings_table
from .sqlite_web import WebMixin, create_web_tables
from .sqlite_retention import RetentionMixin, create_retention_indexes
from .sqlite_ops import OpsMixin, create_ops_indexes
from .sqlite_tokens import TokensMixin, create_token_tables
from .sqlite_writes import EventWritesMixin

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
                  IssuesMixin, IssueEventsMixin, TokensMixin, EventWritesMixin, EventReadsMixin, MonitorsMixin,
                  ControlsMixin):
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
        # only gains what it lacks (version 1 → 2: the killswitches table).
        create_killswitch_table(db)
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
        create_monitor_tables(db)
        db.execute(
            """CREATE TABLE IF NOT EXISTS logs (
                id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, timestamp REAL NOT NULL, level TEXT NOT NULL,
                body TEXT NOT NULL, trace_id TEXT, span_id TEXT, attributes TEXT NOT NULL)"""
        )
        db.execute("CREATE INDEX IF NOT EXISTS logs_time ON logs(project_id, timestamp)")
        create_lane_override_table(db)
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


def _issue_row(row: sqlite3.Row) -> dict[str, Any]:
    issue = dict(row)
    issue["metadata"] = orjson.loads(issue["metadata"]) if issue["metadata"] else {}
    issue["status_details"] = load_details(issue.get("status_details"))
    return issue
