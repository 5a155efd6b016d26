"""A size-bounded folder of derived files (symbol caches), evicting the least recently used.

Building a symbol cache from a debug file costs far more than reading one back, so what was built
once is kept on disk and survives restarts. The folder never holds more than ``max_bytes``: after
each write the least recently used files (by modification time, refreshed on every hit) are
deleted until it fits. A file larger than the whole budget is not kept at all. Writes go to a
temporary name first and are renamed into place, so a reader never sees half a file, and several
processes may share the folder. All methods block on file I/O: call them from worker threads.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import StorageError

__all__ = ["DiskCache"]

_KEY_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,200}")


class DiskCache:
    """Derived files under ``root``, at most ``max_bytes`` together. Thread-safe; blocks on I/O.

    Raises StorageError when the folder cannot be created or written, ValueError for a key that
    is not a plain file name.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._bytes = sum(entry.stat().st_size for entry in self._entries())
        except OSError as exc:
            raise StorageError(f"cannot use the cache folder {self.root}: {exc}") from exc

    def _entries(self) -> list[os.DirEntry]:
        return [entry for entry in os.scandir(self.root) if entry.is_file() and not entry.name.startswith(".")]

    def _path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / key

    @property
    def size_bytes(self) -> int:
        """Bytes the cached files take now (as this process accounts them)."""
        return self._bytes

    def get(self, key: str) -> Path | None:
        """Return the cached file's path and mark it recently used, or None when it is not cached."""
        path = self._path(key)
        try:
            os.utime(path)
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as exc:
            raise StorageError(f"cannot use cached file {path}: {exc}") from exc
        self.hits += 1
        return path

    def put(self, key: str, write: Callable[[BinaryIO], None]) -> Path | None:
        """Write a file with ``write(file)``, keep it, then evict the least recently used to fit.

        Returns its path, or None when it alone exceeds ``max_bytes`` (it is then not kept).
        """
        path = self._path(key)
        try:
            handle, temp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            try:
                with os.fdopen(handle, "wb") as file:
                    write(file)
                size = os.path.getsize(temp)
                if size > self.max_bytes:
                    os.unlink(temp)
                    return None
                with self._lock:
                    replaced = path.stat().st_size if path.exists() else 0
                    os.replace(temp, path)
                    self._bytes += size - replaced
                    self._evict(keep=path)
            except BaseException:
                if os.path.exists(temp):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write cached file {path}: {exc}") from exc
        return path

    def _evict(self, keep: Path) -> None:
        if self._bytes <= self.max_bytes:
            return
        # Another process sharing the folder may have added or removed files: count afresh.
        entries = sorted(self._entries(), key=lambda entry: entry.stat().st_mtime)
        self._bytes = sum(entry.stat().st_size for entry in entries)
        for entry in entries:
            if self._bytes <= self.max_bytes:
                break
            if entry.path == str(keep):
                continue
            size = entry.stat().st_size
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
            self._bytes -= size
            self.evictions += 1

    def statistics(self) -> dict[str, int]:
        """Hits, misses, evictions and bytes held, for /metrics."""
        return {"disk_hits": self.hits, "disk_misses": self.misses, "disk_evictions": self.evictions,
                "disk_bytes": self._bytes}
