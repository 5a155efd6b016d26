"""A JSON-lines file that rotates by size and keeps a bounded number of old files.

At most ``max_bytes`` per file and ``backups`` old files (``path.1`` newest … ``path.N`` oldest),
so the archive never holds more than ``(backups + 1) * max_bytes``. A line longer than
``max_bytes`` is not written whole: a short stub line with the event id and ``"truncated": true``
takes its place, so the file stays bounded and the event is still accounted for.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson

__all__ = ["JsonlArchive"]


class JsonlArchive:
    """Appends events to ``path``; thread-safe (the process stage calls plugins from worker threads).

    ``append`` blocks on file I/O and raises OSError when the file cannot be written (the caller,
    minisentry's per-event processor runner, then marks the event ``plugin_failed`` and keeps it).
    """

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
        if max_bytes < 256:
            raise ValueError("max_bytes must be at least 256")
        if backups < 0:
            raise ValueError("backups must be >= 0")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()

    def append(self, project_id: int, event: dict[str, Any]) -> None:
        """Write the event as one line (with ``project_id``), rotating first if it would not fit."""
        line = orjson.dumps({"project_id": project_id, **event}, default=repr) + b"\n"
        if len(line) > self.max_bytes:
            line = orjson.dumps({"project_id": project_id, "event_id": event.get("event_id"), "truncated": True,
                                 "bytes": len(line)}) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as file:
                file.write(line)

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{self.backups}")
        oldest.unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def files(self) -> list[Path]:
        """The archive's files that exist, newest first."""
        candidates = [self.path] + [self.path.with_name(f"{self.path.name}.{n}") for n in range(1, self.backups + 1)]
        return [p for p in candidates if p.exists()]
