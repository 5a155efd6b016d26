"""The artifact folder's ``index.sqlite``: one connection per thread, errors as StorageError.

Source-map bundles (artifacts.py) and debug files (difs.py) index their files in the same SQLite
file next to them; both reach it through this class.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .errors import StorageError

__all__ = ["ArtifactIndex"]


class ArtifactIndex:
    """``<root>/index.sqlite`` in WAL mode, a connection per calling thread. Blocks on SQLite.

    ``what`` names the index in error messages. Methods raise StorageError when SQLite fails.
    """

    def __init__(self, root: Path, what: str) -> None:
        self.root = Path(root)
        self.what = what
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.root / "index.sqlite", timeout=30, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open the {self.what} in {self.root}: {exc}") from exc
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement and return its rows."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.what} query failed: {exc}") from exc

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
