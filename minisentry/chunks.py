"""Content-addressed chunks of uploads waiting to be assembled (sentry-cli's chunk upload).

Each chunk is a file named by the sha1 of its bytes under ``<path>/chunks/``; the name is checked
against the bytes before it is kept, so a chunk is never stored under a wrong name. The store holds
at most ``max_bytes``: chunks older than ``max_age`` are removed to make room, and past that a
``put`` is refused with PayloadTooLarge (413). Assembling a bundle removes the chunks it used.
All methods block on file I/O: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import zlib
from pathlib import Path

from .errors import BadRequest, PayloadTooLarge, StorageError

__all__ = ["ChunkStore", "SHA1_RE", "gunzip_limited", "write_atomically"]

SHA1_RE = re.compile(r"[0-9a-f]{40}")


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress one gzip member, refusing output past ``limit`` bytes.

    Raises PayloadTooLarge past the limit, BadRequest for corrupt data.
    """
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"chunk is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"chunk exceeds chunkSize ({limit} bytes) after decompression")
    if not decompressor.eof:
        raise BadRequest("chunk is truncated gzip")
    return out


class ChunkStore:
    """Chunks on disk by sha1, bounded in total bytes. Blocking; thread-safe through atomic renames."""

    def __init__(self, path: Path, *, max_bytes: int, max_age: float) -> None:
        self.dir = path / "chunks"
        self.max_bytes = max_bytes
        self.max_age = max_age

    def open(self) -> None:
        """Create the folder. Raises StorageError if it cannot be created."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the chunk folder {self.dir}: {exc}") from exc

    def _path(self, checksum: str) -> Path:
        return self.dir / checksum

    def has(self, checksum: str) -> bool:
        """Return whether the chunk is stored."""
        return self._path(checksum).is_file()

    def missing(self, checksums: list[str]) -> list[str]:
        """Return the checksums not stored, in order, without duplicates."""
        return [checksum for checksum in dict.fromkeys(checksums) if not self.has(checksum)]

    def usage(self) -> tuple[int, list[tuple[float, int, Path]]]:
        """Return the bytes stored and (mtime, size, path) of every chunk."""
        entries = []
        try:
            with os.scandir(self.dir) as it:
                for entry in it:
                    if entry.is_file() and SHA1_RE.fullmatch(entry.name):
                        stat = entry.stat()
                        entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        except OSError as exc:
            raise StorageError(f"cannot list {self.dir}: {exc}") from exc
        return sum(size for _, size, _ in entries), entries

    def put_many(self, chunks: list[tuple[str, bytes]]) -> None:
        """Store chunks ``(sha1, bytes)`` after checking every checksum and the total limit first.

        Nothing is stored if one chunk is refused. Raises BadRequest for a checksum that does not
        match its bytes, PayloadTooLarge when the store would pass ``max_bytes`` even after removing
        chunks older than ``max_age``, StorageError on I/O failure.
        """
        new = []
        for checksum, data in chunks:
            if not SHA1_RE.fullmatch(checksum):
                raise BadRequest(f"chunk name {checksum[:60]!r} is not a lowercase sha1")
            if hashlib.sha1(data).hexdigest() != checksum:
                raise BadRequest(f"chunk {checksum} does not match its sha1 checksum")
            if not self.has(checksum):
                new.append((checksum, data))
        incoming = sum(len(data) for _, data in new)
        if incoming > self.max_bytes:
            raise PayloadTooLarge(f"chunks exceed the chunk store limit ({self.max_bytes} bytes)")
        used, entries = self.usage()
        if used + incoming > self.max_bytes:
            used -= self._expire(entries)
            if used + incoming > self.max_bytes:
                raise PayloadTooLarge(f"the chunk store is full ({self.max_bytes} bytes): assemble or retry later")
        for checksum, data in new:
            write_atomically(self._path(checksum), data, f"chunk {checksum}")

    def _expire(self, entries: list[tuple[float, int, Path]]) -> int:
        """Remove chunks older than ``max_age``; return the bytes freed."""
        cutoff = time.time() - self.max_age
        freed = 0
        for mtime, size, path in entries:
            if mtime < cutoff:
                path.unlink(missing_ok=True)
                freed += size
        return freed

    def read(self, checksum: str) -> bytes:
        """Return a chunk's bytes. Raises StorageError if it is gone or unreadable."""
        try:
            return self._path(checksum).read_bytes()
        except OSError as exc:
            raise StorageError(f"chunk {checksum} cannot be read: {exc}") from exc

    def remove(self, checksums: list[str]) -> None:
        """Remove chunks (those already gone are ignored)."""
        for checksum in checksums:
            self._path(checksum).unlink(missing_ok=True)


def write_atomically(target: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``target`` through a temporary file beside it and a rename, so readers
    (and other processes) see the whole file or none. Blocks on disk I/O.

    Raises StorageError naming ``what`` (the temporary file is removed).
    """
    temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StorageError(f"cannot store {what}: {exc}") from exc
