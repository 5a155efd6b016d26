"""The artifact store: assembled bundles on disk by sha1, and an index to find files in them.

Layout under ``[sourcemaps] path``::

    chunks/<sha1>            uploaded chunks waiting to be assembled (chunks.py)
    bundles/<sha1>.zip       assembled artifact bundles, content-addressed
    index.sqlite             debug id -> file, (project, release, dist, url) -> file, bundle sizes

The index is its own SQLite file, owned by this store, rather than tables in the event store:
uploads are written by the relay role and read by the symbolicate role, which may be different
processes from the one store writer; the event store is a plugin (it need not be SQLite); and the
store's schema stays about events. Every method blocks (SQLite, files): call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import Iterable

from .bundle_format import Bundle, parse_bundle, read_member
from .chunks import ChunkStore, write_atomically
from .config_sourcemaps import SourcemapsConfig
from .artifact_index import ArtifactIndex
from .errors import ArtifactError, BadRequest, PayloadTooLarge, StorageError

__all__ = ["ArtifactStore", "FileRef"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (checksum TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL,
                                    release TEXT, dist TEXT);
CREATE TABLE IF NOT EXISTS debug_files (project_id INTEGER NOT NULL, debug_id TEXT NOT NULL, type TEXT NOT NULL,
                                        checksum TEXT NOT NULL, path TEXT NOT NULL, url TEXT NOT NULL,
                                        sourcemap TEXT, created REAL NOT NULL,
                                        PRIMARY KEY (project_id, debug_id, type));
CREATE TABLE IF NOT EXISTS release_files (project_id INTEGER NOT NULL, release TEXT NOT NULL, dist TEXT NOT NULL,
                                          url TEXT NOT NULL, type TEXT NOT NULL, checksum TEXT NOT NULL,
                                          path TEXT NOT NULL, sourcemap TEXT, created REAL NOT NULL,
                                          PRIMARY KEY (project_id, release, dist, url));
"""


@dataclass(frozen=True, slots=True)
class FileRef:
    """Where an indexed file is: bundle ``checksum`` and zip ``path``, with its url and sourcemap header."""

    checksum: str
    path: str
    url: str
    type: str
    sourcemap: str | None


class ArtifactStore:
    """Bundles and their index under ``config.path``; chunks in ``self.chunks``. Blocking, thread-safe."""

    def __init__(self, config: SourcemapsConfig) -> None:
        if config.path is None:
            raise StorageError("sourcemaps.path is not set")
        self.config = config
        self.root = config.path
        self.bundles = config.path / "bundles"
        self.chunks = ChunkStore(config.path, max_bytes=config.max_chunk_store_bytes, max_age=config.chunk_max_age)
        self._db = ArtifactIndex(self.root, "artifact index")
        # Assembling checks the total size then writes: one at a time per process keeps the limit.
        self._write_lock = threading.Lock()

    def open(self) -> "ArtifactStore":
        """Create folders and the index. Raises StorageError. Returns self."""
        try:
            self.bundles.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.bundles}: {exc}") from exc
        self.chunks.open()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
        return self

    def _conn(self) -> sqlite3.Connection:
        return self._db.connection()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._db.query(sql, params)

    # -- writes --------------------------------------------------------------------------------------

    def has_bundle(self, checksum: str) -> bool:
        """Return whether a bundle with this sha1 is stored."""
        return bool(self._query("SELECT 1 FROM bundles WHERE checksum = ?", (checksum,)))

    def assemble(self, checksum: str, chunks: list[str], project_ids: Iterable[int], release: str | None = None,
                 dist: str | None = None) -> dict:
        """Assemble a bundle from stored chunks; return sentry-cli's state object.

        ``{"state": "ok"}`` once stored (also when it already was), ``{"state": "not_found",
        "missingChunks": [...]}`` while chunks are missing. Raises BadRequest when the chunks do not
        add up to ``checksum`` or the bundle is not a valid bundle, PayloadTooLarge past
        ``max_bundle_bytes`` or ``max_store_bytes``, StorageError on I/O failure.
        """
        if self.has_bundle(checksum):
            self._index_projects(checksum, project_ids, release, dist)
            return {"state": "ok", "detail": None, "missingChunks": []}
        missing = self.chunks.missing(chunks)
        if missing or not chunks:
            return {"state": "not_found", "detail": None, "missingChunks": missing}
        size = sum((self.chunks.dir / chunk).stat().st_size for chunk in chunks)
        if size > self.config.max_bundle_bytes:
            raise PayloadTooLarge(f"the bundle exceeds sourcemaps.max_bundle_bytes ({self.config.max_bundle_bytes})")
        data = b"".join(self.chunks.read(chunk) for chunk in chunks)
        if hashlib.sha1(data).hexdigest() != checksum:
            raise BadRequest(f"the chunks do not add up to checksum {checksum}")
        self.add_bundle(data, project_ids, release, dist, checksum=checksum)
        self.chunks.remove(chunks)
        return {"state": "ok", "detail": None, "missingChunks": []}

    def add_bundle(self, data: bytes, project_ids: Iterable[int], release: str | None = None,
                   dist: str | None = None, *, checksum: str | None = None) -> Bundle:
        """Check, store and index a whole bundle; return it parsed.

        Raises BadRequest for a broken bundle (the ArtifactError's detail), PayloadTooLarge past
        ``max_bundle_bytes`` or ``max_store_bytes``, StorageError on I/O failure.
        """
        config = self.config
        if len(data) > config.max_bundle_bytes:
            raise PayloadTooLarge(f"the bundle exceeds sourcemaps.max_bundle_bytes ({config.max_bundle_bytes})")
        checksum = checksum or hashlib.sha1(data).hexdigest()
        try:
            bundle = parse_bundle(data, max_files=config.max_bundle_files, max_file_bytes=config.max_file_bytes)
        except ArtifactError as exc:
            raise BadRequest(f"invalid artifact bundle: {exc}") from exc
        release = release or bundle.release
        dist = dist or bundle.dist
        with self._write_lock:
            if not self.has_bundle(checksum):
                used = self._query("SELECT COALESCE(SUM(size), 0) FROM bundles")[0][0]
                if used + len(data) > config.max_store_bytes:
                    raise PayloadTooLarge(f"the artifact store is full (sourcemaps.max_store_bytes = "
                                          f"{config.max_store_bytes}); remove old bundles")
                write_atomically(self.bundles / f"{checksum}.zip", data, f"bundle {checksum}")
            self._index(checksum, len(data), bundle, project_ids, release, dist)
        return bundle

    def _index(self, checksum: str, size: int, bundle: Bundle, project_ids: Iterable[int], release: str | None,
               dist: str | None) -> None:
        now = time.time()
        projects = list(project_ids)
        rows_debug, rows_release = [], []
        for item in bundle.files:
            for project_id in projects:
                if item.debug_id is not None:
                    rows_debug.append((project_id, item.debug_id, item.type, checksum, item.path, item.url,
                                       item.sourcemap, now))
                if release:
                    rows_release.append((project_id, release, dist or "", item.url, item.type, checksum, item.path,
                                         item.sourcemap, now))
        conn = self._conn()
        try:
            with conn:
                conn.execute("INSERT OR IGNORE INTO bundles VALUES (?, ?, ?, ?, ?)", (checksum, size, now, release, dist))
                # The newest upload of a debug id or release URL wins, as in Sentry.
                conn.executemany("INSERT OR REPLACE INTO debug_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_debug)
                conn.executemany("INSERT OR REPLACE INTO release_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 rows_release)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot index bundle {checksum}: {exc}") from exc

    def _index_projects(self, checksum: str, project_ids: Iterable[int], release: str | None,
                        dist: str | None) -> None:
        """A bundle uploaded again (for more projects or another release): index it for those too."""
        data = self.bundle_bytes(checksum)
        bundle = parse_bundle(data, max_files=self.config.max_bundle_files, max_file_bytes=self.config.max_file_bytes)
        self._index(checksum, len(data), bundle, project_ids, release or bundle.release, dist or bundle.dist)

    # -- reads ---------------------------------------------------------------------------------------

    def bundle_bytes(self, checksum: str) -> bytes:
        """Return a stored bundle's bytes. Raises StorageError if it is gone."""
        try:
            return (self.bundles / f"{checksum}.zip").read_bytes()
        except OSError as exc:
            raise StorageError(f"bundle {checksum} cannot be read: {exc}") from exc

    def read_file(self, ref: FileRef) -> bytes:
        """Return one indexed file's bytes (at most ``max_file_bytes``). Raises ArtifactError, StorageError."""
        try:
            archive = zipfile.ZipFile(self.bundles / f"{ref.checksum}.zip")
        except FileNotFoundError as exc:
            raise StorageError(f"bundle {ref.checksum} is gone") from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArtifactError(f"bundle {ref.checksum} is broken: {exc}") from exc
        with archive:
            return read_member(archive, ref.path, self.config.max_file_bytes)

    def by_debug_id(self, project_id: int, debug_id: str, kind: str) -> FileRef | None:
        """Return the newest file of ``kind`` (``source_map``/``minified_source``) with this debug id."""
        rows = self._query("SELECT checksum, path, url, type, sourcemap FROM debug_files "
                           "WHERE project_id = ? AND debug_id = ? AND type = ?", (project_id, debug_id, kind))
        return FileRef(*rows[0]) if rows else None

    def by_url(self, project_id: int, release: str, dist: str | None, urls: list[str]) -> FileRef | None:
        """Return the release file matching the first of ``urls`` that is indexed (candidates in order)."""
        if not urls:
            return None
        marks = ",".join("?" * len(urls))
        rows = self._query(f"SELECT url, checksum, path, type, sourcemap FROM release_files WHERE project_id = ? "
                           f"AND release = ? AND dist = ? AND url IN ({marks})", (project_id, release, dist or "", *urls))
        found = {row[0]: row for row in rows}
        for url in urls:
            if url in found:
                _, checksum, path, kind, sourcemap = found[url]
                return FileRef(checksum, path, url, kind, sourcemap)
        return None

    def usage(self) -> dict[str, int]:
        """Return counts and bytes of what is stored."""
        bundles, size = self._query("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM bundles")[0]
        chunk_bytes, chunks = self.chunks.usage()
        return {"bundles": bundles, "bundle_bytes": size, "chunks": len(chunks), "chunk_bytes": chunk_bytes}

    def close(self) -> None:
        """Close this thread's index connection."""
        self._db.close()
