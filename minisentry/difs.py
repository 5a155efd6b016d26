"""The debug-file store: assembled native debug files and ProGuard mappings by sha1, indexed by debug id.

Layout, beside the artifact bundles (``[sourcemaps] path``)::

    difs/<sha1>              assembled debug files, content-addressed
    index.sqlite             + tables ``difs`` and ``dif_objects`` (project, debug id -> file)

The tables are created with ``IF NOT EXISTS`` when the store opens: an index written before debug
files existed gains them on first open (the migration), and artifacts.py's tables are untouched.
ProGuard mappings are indexed by the uuid sentry-cli computes, as their debug id.
Every method blocks (SQLite, files, parsing): call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .chunks import ChunkStore, write_atomically
from .config_native import NativeConfig
from .difparse import DifInfo, DifObject, parse_dif
from .artifact_index import ArtifactIndex
from .errors import ArtifactError, StorageError

__all__ = ["DifStore", "DifRef"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS difs (checksum TEXT PRIMARY KEY, size INTEGER NOT NULL, name TEXT NOT NULL,
                                 kind TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dif_objects (project_id INTEGER NOT NULL, debug_id TEXT NOT NULL, code_id TEXT,
                                        arch TEXT, format TEXT NOT NULL, features TEXT NOT NULL,
                                        checksum TEXT NOT NULL, created REAL NOT NULL,
                                        PRIMARY KEY (project_id, debug_id, checksum));
CREATE INDEX IF NOT EXISTS dif_objects_code_id ON dif_objects (project_id, code_id);
"""


@dataclass(frozen=True, slots=True)
class DifRef:
    """An indexed object: the file's ``checksum`` and ``path`` on disk, its debug id, arch and format."""

    checksum: str
    path: Path
    debug_id: str
    arch: str | None
    format: str


class DifStore:
    """Debug files under ``root/difs`` with their index in ``root/index.sqlite``. Blocking, thread-safe."""

    def __init__(self, root: Path, config: NativeConfig, chunks: ChunkStore) -> None:
        self.root = root
        self.dir = root / "difs"
        self.config = config
        self.chunks = chunks
        self._db = ArtifactIndex(self.root, "debug-file index")
        # The total-size check and the write must not interleave within a process.
        self._write_lock = threading.Lock()

    def open(self) -> "DifStore":
        """Create the folder and the index tables. Raises StorageError. Returns self."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.dir}: {exc}") from exc
        self.chunks.open()
        try:
            with self._conn() as conn:
                conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot create the debug-file index: {exc}") from exc
        return self

    def _conn(self) -> sqlite3.Connection:
        return self._db.connection()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._db.query(sql, params)

    # -- writes --------------------------------------------------------------------------------------

    def assemble(self, checksum: str, name: str, chunks: list[str], project_id: int) -> dict[str, Any]:
        """Assemble one debug file from stored chunks; return its sentry-cli state object.

        ``ok`` with a ``dif`` description once stored (also when it already was), ``not_found`` with
        ``missingChunks`` while chunks are missing, ``error`` with a ``detail`` when the file is too
        large, the store is full, the chunks do not add up to ``checksum`` or the file is not a debug
        file (its chunks are then removed). Raises StorageError on I/O failure.
        """
        stored = self._query("SELECT size, kind FROM difs WHERE checksum = ?", (checksum,))
        if stored:
            # Uploaded before (maybe for another project): index it for this one from the index itself.
            rows = self._query("SELECT DISTINCT debug_id, code_id, arch, format, features FROM dif_objects "
                               "WHERE checksum = ?", (checksum,))
            if rows:
                info = DifInfo(stored[0][1], tuple(DifObject(d, c, a, f, frozenset(filter(None, feats.split(","))))
                                                   for d, c, a, f, feats in rows))
                self._index(checksum, stored[0][0], name, info, [project_id])
                return _ok(checksum, name, stored[0][0], info)
        missing = self.chunks.missing(chunks)
        if missing or not chunks:
            return {"state": "not_found", "missingChunks": missing, "detail": None}
        try:
            size = sum((self.chunks.dir / chunk).stat().st_size for chunk in chunks)
        except OSError:  # removed since (expired): ask for them again
            return {"state": "not_found", "missingChunks": self.chunks.missing(chunks), "detail": None}
        if size > self.config.max_file_bytes:
            self.chunks.remove(chunks)
            return _error(f"the debug file is {size} bytes, more than native.max_file_bytes "
                          f"({self.config.max_file_bytes})")
        data = b"".join(self.chunks.read(chunk) for chunk in chunks)
        if hashlib.sha1(data).hexdigest() != checksum:
            self.chunks.remove(chunks)
            return _error(f"the chunks do not add up to checksum {checksum}")
        try:
            info = self.add(data, name, [project_id], checksum=checksum)
        except ArtifactError as exc:
            self.chunks.remove(chunks)
            return _error(str(exc))
        self.chunks.remove(chunks)
        return _ok(checksum, name, len(data), info)

    def add(self, data: bytes, name: str, project_ids: Iterable[int], *, checksum: str | None = None) -> DifInfo:
        """Check, store and index a whole debug file; return what it holds.

        Raises ArtifactError (the client's detail) when it is not a debug file, too large or the store
        is full; StorageError on I/O failure.
        """
        config = self.config
        if len(data) > config.max_file_bytes:
            raise ArtifactError(f"the debug file exceeds native.max_file_bytes ({config.max_file_bytes})")
        checksum = checksum or hashlib.sha1(data).hexdigest()
        info = parse_dif(data)
        with self._write_lock:
            if not self._query("SELECT 1 FROM difs WHERE checksum = ?", (checksum,)):
                used = self._query("SELECT COALESCE(SUM(size), 0) FROM difs")[0][0]
                if used + len(data) > config.max_store_bytes:
                    raise ArtifactError(f"the debug-file store is full (native.max_store_bytes = "
                                        f"{config.max_store_bytes}); remove old debug files")
                write_atomically(self.path(checksum), data, f"debug file {checksum}")
            self._index(checksum, len(data), name, info, project_ids)
        return info

    def _index(self, checksum: str, size: int, name: str, info: DifInfo, project_ids: Iterable[int]) -> None:
        now = time.time()
        rows = [(project_id, obj.debug_id, obj.code_id, obj.arch, obj.format, ",".join(sorted(obj.features)),
                 checksum, now) for project_id in project_ids for obj in info.objects]
        conn = self._conn()
        try:
            with conn:
                conn.execute("INSERT OR IGNORE INTO difs VALUES (?, ?, ?, ?, ?)",
                             (checksum, size, name[:500], info.kind, now))
                conn.executemany("INSERT OR REPLACE INTO dif_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot index debug file {checksum}: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------------------

    def path(self, checksum: str) -> Path:
        """Where a stored debug file is (whether or not it exists)."""
        return self.dir / checksum

    def find(self, project_id: int, debug_id: str | None, code_id: str | None = None, *,
             proguard: bool = False) -> DifRef | None:
        """Return the best object for a debug id (else a code id): files with debug info first, then newest.

        ``proguard`` selects mappings instead of native objects.
        """
        kind = "= 'proguard'" if proguard else "!= 'proguard'"
        for column, value in (("debug_id", debug_id), ("code_id", code_id)):
            if not value:
                continue
            rows = self._query(
                f"SELECT checksum, debug_id, arch, format FROM dif_objects WHERE project_id = ? AND {column} = ? "
                f"AND format {kind} ORDER BY instr(features, 'debug') > 0 DESC, created DESC LIMIT 1",
                (project_id, value))
            if rows:
                checksum, found_id, arch, fmt = rows[0]
                return DifRef(checksum, self.path(checksum), found_id, arch, fmt)
        return None

    def usage(self) -> dict[str, int]:
        """Return how many debug files are stored and their bytes."""
        count, size = self._query("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM difs")[0]
        return {"difs": count, "dif_bytes": size}

    def close(self) -> None:
        """Close this thread's index connection."""
        self._db.close()


def _ok(checksum: str, name: str, size: int, info: DifInfo) -> dict[str, Any]:
    first = info.objects[0]
    # The ``dif`` sentry-cli prints: its id, name and arch (``cpuName``).
    dif = {"id": checksum, "uuid": first.debug_id, "debugId": first.debug_id, "objectName": name,
           "cpuName": first.arch or "any", "sha1": checksum, "size": size,
           "data": {"features": sorted(first.features)}}
    return {"state": "ok", "missingChunks": [], "detail": None, "dif": dif}


def _error(detail: str) -> dict[str, Any]:
    return {"state": "error", "missingChunks": [], "detail": detail[:500]}
