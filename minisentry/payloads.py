"""Payload stores: bytes kept under a key for a limited time (large envelopes beside a channel).

A channel whose records should stay small (Kafka) can put a big payload here and send only its key;
the consumer gets it and deletes it. :class:`PayloadStore` is the protocol; :class:`MemoryPayloadStore`
keeps payloads in this process (bounded in bytes); ``backends/redis_payloads.py`` keeps them in Redis
so every process sees them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from typing import Callable, Protocol, runtime_checkable

from .errors import BackendFull

__all__ = ["PayloadStore", "MemoryPayloadStore", "check_ttl", "ENTRY_OVERHEAD"]

#: Bytes charged per stored entry on top of key and data, so that many empty payloads are bounded too.
ENTRY_OVERHEAD = 64


@runtime_checkable
class PayloadStore(Protocol):
    """Bytes under string keys, each kept for ``ttl`` seconds at most."""

    name: str

    def put(self, key: str, data: bytes, ttl: float) -> None:
        """Store ``data`` under ``key`` (replacing it) for ``ttl`` seconds.

        Blocks (one round trip); raises BackendError when the backend fails, BackendFull at its limit,
        ValueError for a ttl that is not a positive finite number.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or None when missing or expired. Blocks; raises BackendError."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is missing). Blocks; raises BackendError."""
        ...


def check_ttl(ttl: float) -> float:
    """Return ``ttl`` if it is a positive finite number of seconds; raise ValueError otherwise."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    return float(ttl)


class MemoryPayloadStore:
    """Payloads in this process's memory, at most ``max_bytes`` in all. Thread-safe; never blocks long.

    Each entry costs ``len(key) + len(data) + ENTRY_OVERHEAD`` bytes. Expired entries are evicted
    before every put, so they never count against the limit. A put that would still pass the limit
    raises BackendFull and stores nothing (the caller decides: wait, send inline, or refuse); live
    payloads are never evicted to make room, because a consumer may still need them.
    ``clock`` is monotonic seconds (injectable for tests).
    """

    name = "memory"

    def __init__(self, max_bytes: int = 256 * 1024 * 1024, *, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int, bytes]] = {}  # key -> (expires_at, sequence, data)
        self._heap: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: str, data: bytes, ttl: float) -> None:
        """See PayloadStore.put. Raises BackendFull past ``max_bytes``, ValueError for a bad ttl."""
        ttl = check_ttl(ttl)
        data = bytes(data)
        cost = len(key) + len(data) + ENTRY_OVERHEAD
        with self._lock:
            now = self._clock()
            self._expire(now)
            old = self._entries.get(key)
            freed = len(key) + len(old[2]) + ENTRY_OVERHEAD if old is not None else 0
            if self.size_bytes - freed + cost > self.max_bytes:
                raise BackendFull(f"memory payload store is full: {self.size_bytes} of {self.max_bytes} bytes "
                                  f"used, a payload of {len(data)} bytes does not fit")
            sequence = next(self._sequence)
            self._entries[key] = (now + ttl, sequence, data)
            self.size_bytes += cost - freed
            heapq.heappush(self._heap, (now + ttl, sequence, key))
            self._compact()

    def get(self, key: str) -> bytes | None:
        """See PayloadStore.get. Never blocks; raises nothing."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return None
            return entry[2]

    def delete(self, key: str) -> None:
        """See PayloadStore.delete. Never blocks; raises nothing."""
        with self._lock:
            self._remove(key)
            self._compact()

    def _compact(self) -> None:
        # Replaced and deleted keys leave stale heap items; rebuild before they outnumber live entries.
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [(entry[0], entry[1], k) for k, entry in self._entries.items()]
            heapq.heapify(self._heap)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size_bytes -= len(key) + len(entry[2]) + ENTRY_OVERHEAD

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, sequence, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == sequence:
                self._remove(key)
