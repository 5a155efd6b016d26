"""The SQLite store's API tokens (``minisentry tokens create|list|revoke``): ``api_tokens``.

Only a token's SHA-256 is stored (``api_auth.hash_token``), with its name, scopes, creation time and
when it was last used; nothing in the table can authenticate anybody. A token is looked up by its
hash through the table's unique index, so no comparison of the secret itself happens here.

A mixin of :class:`~minisentry.backends.sqlite.SqliteStore`: methods block on disk I/O and raise
StorageError (TokenExists for a duplicate name, NotFound for an unknown one).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..errors import NotFound, TokenExists

__all__ = ["TokensMixin", "create_token_tables", "token_is_stale", "TOUCH_EVERY"]

#: ``last_used`` is written at most this often per token, so reads do not turn into a write each.
TOUCH_EVERY = 60.0


def create_token_tables(db: Any) -> None:
    """Create ``api_tokens`` if missing (part of the store's migration, schema 14)."""
    db.execute("CREATE TABLE IF NOT EXISTS api_tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
               "token_hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL, created REAL NOT NULL, last_used REAL)")


class TokensMixin:
    """Creating, listing, revoking and finding API tokens (needs the store's ``_run``)."""

    def create_api_token(self, name: str, token_hash: str, scopes: list[str]) -> int:
        """Store a token by its hash; return its id. Raises TokenExists for a taken name, StorageError."""

        def run(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM api_tokens WHERE name = ?", (name,)).fetchone():
                raise TokenExists(f"a token named {name!r} already exists")
            return int(conn.execute("INSERT INTO api_tokens(name, token_hash, scopes, created) VALUES (?, ?, ?, ?)",
                                    (name, token_hash, " ".join(scopes), time.time())).lastrowid)

        return self._run(run)  # type: ignore[attr-defined]

    def list_api_tokens(self) -> list[dict[str, Any]]:
        """Every token's ``name, scopes (list), created, last_used`` (never its hash), by name."""
        rows = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT name, scopes, created, last_used FROM api_tokens ORDER BY name").fetchall())
        return [{"name": r[0], "scopes": r[1].split(), "created": r[2], "last_used": r[3]} for r in rows]

    def revoke_api_token(self, name: str) -> None:
        """Delete the token ``name``: the next request with it is refused. Raises NotFound, StorageError."""
        deleted = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount)
        if deleted == 0:
            raise NotFound(f"no token named {name!r}")

    def find_api_token(self, token_hash: str) -> dict[str, Any] | None:
        """The token with this hash as ``{"id", "name", "scopes", "last_used"}``, or None.

        A plain read (works on the read-only store). Raises StorageError.
        """
        row = self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT id, name, scopes, last_used FROM api_tokens WHERE token_hash = ?", (token_hash,)).fetchone())
        return None if row is None else {"id": row[0], "name": row[1], "scopes": row[2].split(), "last_used": row[3]}

    def touch_api_token(self, token_id: int, now: float | None = None) -> None:
        """Record that the token was used now. Raises StorageError."""
        self._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "UPDATE api_tokens SET last_used = ? WHERE id = ?", (time.time() if now is None else now, token_id)))

    def api_token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token with this hash as ``{"name", "scopes"}``, or None; records its use (at most once a
        minute, TOUCH_EVERY). Raises StorageError."""
        token = self.find_api_token(token_hash)
        if token is None:
            return None
        if token_is_stale(token):
            self.touch_api_token(token["id"])
        return {"name": token["name"], "scopes": token["scopes"]}


def token_is_stale(token: dict[str, Any], now: float | None = None) -> bool:
    """Whether a found token's ``last_used`` is older than TOUCH_EVERY (or never set)."""
    last = token["last_used"]
    return last is None or (time.time() if now is None else now) - last >= TOUCH_EVERY
