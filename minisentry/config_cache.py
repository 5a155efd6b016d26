"""Project-config cache: serialized project configs by project id, bounded and expiring.

Writes are proactive: whoever changes a project's config (a CLI command, an upstream relay) puts the
new bytes; readers (a relay serving that project) get them and fall back to their own source on a
miss. Entries expire after ``ttl`` seconds so a writer that died cannot pin a stale config forever.
:class:`MemoryConfigCache` is for one process; ``backends/redis_config_cache.py`` shares it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Protocol, runtime_checkable

from .errors import BackendFull
from .payloads import check_ttl

__all__ = ["ConfigCache", "MemoryConfigCache", "check_project_id"]


def check_project_id(project_id: int) -> int:
    """Return ``project_id`` if it is a positive int; raise ValueError otherwise."""
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id <= 0:
        raise ValueError(f"project_id must be a positive integer, got {project_id!r}")
    return project_id


@runtime_checkable
class ConfigCache(Protocol):
    """Project configs as opaque bytes, each kept ``ttl`` seconds after its last put."""

    name: str

    def get(self, project_id: int) -> bytes | None:
        """Return the cached config, or None when missing or expired. Blocks; raises BackendError."""
        ...

    def put(self, project_id: int, data: bytes) -> None:
        """Cache ``data`` for the project. Blocks; raises BackendError, BackendFull over the entry size."""
        ...

    def delete(self, project_id: int) -> None:
        """Forget the project's config. Blocks; raises BackendError."""
        ...


class MemoryConfigCache:
    """At most ``max_entries`` configs of at most ``max_entry_bytes`` each, in this process. Thread-safe.

    At ``max_entries`` the least recently used entry is evicted to make room (a cache may forget: a
    reader falls back to the source). A config larger than ``max_entry_bytes`` is refused with
    BackendFull. ``clock`` is monotonic seconds (injectable for tests).
    """

    name = "memory"

    def __init__(self, *, ttl: float = 300.0, max_entries: int = 10_000, max_entry_bytes: int = 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for label, value in (("max_entries", max_entries), ("max_entry_bytes", max_entry_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.ttl = check_ttl(ttl)
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, tuple[float, bytes]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, project_id: int) -> bytes | None:
        """See ConfigCache.get. Never blocks; raises ValueError for a bad project id."""
        check_project_id(project_id)
        with self._lock:
            entry = self._entries.get(project_id)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[project_id]
                return None
            self._entries.move_to_end(project_id)
            return entry[1]

    def put(self, project_id: int, data: bytes) -> None:
        """See ConfigCache.put. Evicts the least recently used entry at ``max_entries``."""
        check_project_id(project_id)
        data = bytes(data)
        if len(data) > self.max_entry_bytes:
            raise BackendFull(f"project config of {len(data)} bytes is over the cache's entry limit "
                              f"({self.max_entry_bytes} bytes)")
        with self._lock:
            self._entries[project_id] = (self._clock() + self.ttl, data)
            self._entries.move_to_end(project_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evicted += 1

    def delete(self, project_id: int) -> None:
        """See ConfigCache.delete. Never blocks."""
        check_project_id(project_id)
        with self._lock:
            self._entries.pop(project_id, None)
