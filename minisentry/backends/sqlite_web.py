"""The SQLite store's web UI tables: ``users``, ``web_sessions``, and the issue reads/writes the UI needs.

Passwords and session tokens arrive here already hashed (``web/passwords.py``, ``web/sessions.py``):
nothing in these tables can sign anybody in. ``web_sessions`` is bounded: expired rows are deleted
whenever a session is created, and past ``max_sessions`` rows the oldest ones go.

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: its methods block on disk I/O and
raise StorageError (UserExists for a duplicate email, NotFound for an unknown issue).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..errors import NotFound, UserExists
from ..issue_query import IssueSearch

__all__ = ["WebMixin", "create_web_tables", "ISSUE_SORTS", "ISSUE_STATUSES"]

#: Sort orders of the issue stream: its names -> the API sort names of ``find_issues``.
ISSUE_SORTS = {"last_seen": "date", "first_seen": "new", "count": "freq"}
#: The statuses of issues (the stream's filter); ``issue_status.py`` has the rules.
ISSUE_STATUSES = ("unresolved", "resolved", "ignored")


def create_web_tables(db: Any) -> None:
    """Create ``users`` and ``web_sessions`` if missing (part of the store's migration)."""
    db.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, "
               "password_hash TEXT NOT NULL, created REAL NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS web_sessions (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, "
               "created REAL NOT NULL, expires REAL NOT NULL)")
    db.execute("CREATE INDEX IF NOT EXISTS web_sessions_expires ON web_sessions(expires)")


class WebMixin:
    """Users, sessions and issue triage for the web UI (needs the store's ``_run``)."""

    # -- users ----------------------------------------------------------------------------------

    def create_user(self, email: str, password_hash: str) -> int:
        """Store a user with an already-hashed password; return its id. Raises UserExists, StorageError."""

        def run(conn: sqlite3.Connection) -> int:
            try:
                cursor = conn.execute("INSERT INTO users(email, password_hash, created) VALUES (?, ?, ?)",
                                      (email, password_hash, time.time()))
            except sqlite3.IntegrityError as exc:
                raise UserExists(f"a user {email!r} already exists") from exc
            return int(cursor.lastrowid)

        return self._run(run)  # type: ignore[attr-defined]

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        """Return ``{"id", "email", "password_hash"}`` or None. Raises StorageError."""
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT id, email, password_hash FROM users WHERE email = ?", (email,)).fetchone())
        return dict(row) if row is not None else None

    def list_users(self) -> list[dict[str, Any]]:
        """Every user: ``{"id", "email", "created", "sessions"}`` (live sessions), by email. Raises StorageError."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT u.id, u.email, u.created, (SELECT count(*) FROM web_sessions s WHERE s.user_id = u.id "
            "AND s.expires > ?) AS sessions FROM users u ORDER BY u.email", (time.time(),)).fetchall())
        return [dict(row) for row in rows]

    def delete_user(self, email: str) -> None:
        """Delete a user and sign them out everywhere. Raises NotFound, StorageError."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
            if row is None:
                raise NotFound(f"no user {email!r}")  # _run rolls the transaction back
            conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (row[0],))
            conn.execute("DELETE FROM users WHERE id = ?", (row[0],))
            conn.execute("COMMIT")

        self._run(run)  # type: ignore[attr-defined]

    def set_user_password(self, email: str, password_hash: str) -> None:
        """Replace a user's password hash and end their sessions. Raises NotFound, StorageError."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
            if row is None:
                raise NotFound(f"no user {email!r}")  # _run rolls the transaction back
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, row[0]))
            # A changed password is often a response to a leak: signed-in browsers must sign in again.
            conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (row[0],))
            conn.execute("COMMIT")

        self._run(run)  # type: ignore[attr-defined]

    # -- sessions -------------------------------------------------------------------------------

    def create_web_session(self, token_hash: str, user_id: int, expires: float, *, max_sessions: int) -> None:
        """Store a session (its token's hash), dropping expired ones and the oldest past ``max_sessions``."""
        now = time.time()

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM web_sessions WHERE expires <= ?", (now,))
            conn.execute("DELETE FROM web_sessions WHERE token_hash IN (SELECT token_hash FROM web_sessions "
                         "ORDER BY created DESC LIMIT -1 OFFSET ?)", (max(max_sessions - 1, 0),))
            conn.execute("INSERT INTO web_sessions(token_hash, user_id, created, expires) VALUES (?, ?, ?, ?)",
                         (token_hash, user_id, now, expires))
            conn.execute("COMMIT")

        self._run(run)  # type: ignore[attr-defined]

    def web_session_user(self, token_hash: str) -> dict[str, Any] | None:
        """Return ``{"user_id", "email", "expires"}`` of a live session, or None. Raises StorageError."""
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT s.user_id, u.email, s.expires FROM web_sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = ? AND s.expires > ?", (token_hash, time.time())).fetchone())
        return dict(row) if row is not None else None

    def delete_web_session(self, token_hash: str) -> None:
        """Forget a session (sign-out); a no-op for an unknown one. Raises StorageError."""
        self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,)))

    # -- issues ---------------------------------------------------------------------------------

    def search_issues(self, project_id: int, *, query: str = "", status: str = "", level: str = "",
                      release: str = "", environment: str = "", sort: str = "last_seen", limit: int = 25,
                      offset: int = 0) -> list[dict[str, Any]]:
        """One page of a project's issues matching text (title/culprit), status, level, and having an
        event of ``release`` and/or ``environment`` (exact match; empty means any): the stream's
        form as an API search (``find_issues``).

        ``sort`` is a key of ISSUE_SORTS (others fall back to last_seen). Raises StorageError.
        """
        filters = [(key, [value], False) for key, value in (("level", level), ("release", release),
                                                             ("environment", environment)) if value]
        search = IssueSearch(statuses=[status] if status else [], filters=filters, text=query)
        return self.find_issues(project_id, search, sort=ISSUE_SORTS.get(sort, "date"),  # type: ignore[attr-defined]
                                limit=limit, offset=offset)

    def set_issue_status(self, issue_id: int, status: str) -> None:
        """Set an issue's status with no conditions (ignored forever, resolved now), clearing its status
        details; ``change_issue_status`` sets conditions. Raises NotFound, ValueError (other status), StorageError."""
        if status not in ISSUE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ISSUE_STATUSES)}")
        changed = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "UPDATE issues SET status = ?, status_details = NULL WHERE id = ?", (status, issue_id)).rowcount)
        if changed == 0:
            raise NotFound(f"no issue {issue_id}")
