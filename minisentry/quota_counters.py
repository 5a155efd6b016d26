"""Quota counters: the :class:`QuotaCounters` protocol the rate limiter counts through, and an in-memory one.

A :class:`CounterRequest` asks to add a quantity to one fixed-window counter unless that passes its
limit; :meth:`QuotaCounters.check_and_increment` decides groups of them atomically (all or none of
a group is counted). :class:`MemoryQuotaCounters` keeps the counters in this process's memory, in
an :class:`ExpiringTable`, which the rate limiter also uses to remember active limits;
``backends/redis_quotas.py`` runs each call as one Lua script in a shared Redis, wrapped in
:class:`FailOpenCounters` by the Pipeline.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass
from typing import Generic, Hashable, Protocol, Sequence, TypeVar, runtime_checkable

from .errors import BackendError

__all__ = ["CounterRequest", "ExpiringTable", "FailOpenCounters", "MemoryQuotaCounters", "QuotaCounters"]

log = logging.getLogger("minisentry.quotas")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class CounterRequest:
    """Add ``quantity`` to counter ``key`` unless that takes it past ``limit`` (None: no limit).

    ``expires_at`` (unix seconds) is the end of the counter's window: the counter may be dropped
    then (a Redis backend sets it as the key's EXPIREAT, plus some grace for clock drift).
    """

    key: str
    limit: int | None
    quantity: int
    expires_at: int


@runtime_checkable
class QuotaCounters(Protocol):
    """Where quota counters live. One call must be atomic (for Redis: one Lua script)."""

    async def check_and_increment(self, groups: Sequence[Sequence[CounterRequest]],
                                  now: float) -> list[list[bool]]:
        """For each group: if no request would exceed its limit, add every quantity; else add none.

        Returns, per group, per request, whether that request was *rejected* (its counter plus
        its quantity exceeds its limit). May block on the backend (one round trip); raises what
        the backend documents when it cannot answer.
        """
        ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringTable(Generic[K, V]):
    """A dict whose entries vanish at their expiry time, with at most ``max_size`` entries.

    Expiry is a heap of (expires_at, sequence, key); entries replaced with a new expiry leave a
    stale heap item that is skipped when popped, and the heap is rebuilt if stale items pile up.
    Not thread-safe; never blocks.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._values: dict[K, tuple[float, int, V]] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._values)

    def expire(self, now: float) -> None:
        """Remove every entry whose expiry is at or before ``now``. Raises nothing."""
        heap, values = self._heap, self._values
        while heap and heap[0][0] <= now:
            expires_at, sequence, key = heapq.heappop(heap)
            current = values.get(key)
            if current is not None and current[1] == sequence:
                del values[key]

    def get(self, key: K) -> V | None:
        """Return the value stored under ``key``, or None if there is none (expired ones stay until expire)."""
        entry = self._values.get(key)
        return entry[2] if entry is not None else None

    def expires_at(self, key: K) -> float | None:
        """Return when the entry under ``key`` expires, or None if there is none."""
        entry = self._values.get(key)
        return entry[0] if entry is not None else None

    def set(self, key: K, value: V, expires_at: float) -> bool:
        """Store ``value`` until ``expires_at``; return False (storing nothing) when full."""
        current = self._values.get(key)
        if current is not None and current[0] == expires_at:
            self._values[key] = (expires_at, current[1], value)
            return True
        if current is None and len(self._values) >= self.max_size:
            return False
        sequence = next(self._sequence)
        self._values[key] = (expires_at, sequence, value)
        heapq.heappush(self._heap, (expires_at, sequence, key))
        if len(self._heap) > 2 * len(self._values) + 64:
            self._heap = [(entry[0], entry[1], k) for k, entry in self._values.items()]
            heapq.heapify(self._heap)
        return True


class MemoryQuotaCounters:
    """Quota counters in this process's memory. Never blocks; atomic because it never awaits.

    Counters of ended windows are removed at every call. At most ``max_keys`` counters are live:
    at the bound, a counter that does not exist yet is *not created*; its request is judged against
    a count of 0 and passes uncounted (``uncounted`` grows by its quantity). So the bound fails
    open for scope instances beyond it (memory stays bounded), while existing counters keep
    enforcing; size it above quotas x projects (or keys) x 2 windows to never reach it.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        if not _is_int(max_keys) or max_keys <= 0:
            raise ValueError(f"max_keys must be a positive integer, got {max_keys!r}")
        self.uncounted = 0
        self._table: ExpiringTable[str, int] = ExpiringTable(max_keys)

    def __len__(self) -> int:
        return len(self._table)

    @property
    def max_keys(self) -> int:
        """The most live counters held at once."""
        return self._table.max_size

    def value(self, key: str, now: float) -> int:
        """Return counter ``key`` at ``now`` (0 if absent or its window has ended)."""
        self._table.expire(now)
        return self._table.get(key) or 0

    async def check_and_increment(self, groups: Sequence[Sequence[CounterRequest]],
                                  now: float) -> list[list[bool]]:
        """See QuotaCounters.check_and_increment. Does not block; raises nothing."""
        table = self._table
        table.expire(now)
        results = []
        for group in groups:
            rejected = [request.limit is not None and (table.get(request.key) or 0) + request.quantity > request.limit
                        for request in group]
            if not any(rejected):
                for request in group:
                    if not table.set(request.key, (table.get(request.key) or 0) + request.quantity,
                                     request.expires_at):
                        self.uncounted += request.quantity
            results.append(rejected)
        return results


class FailOpenCounters:
    """Wraps shared counters so that a backend outage accepts instead of failing requests.

    Like Sentry's Relay: when Redis cannot answer, quotas are not enforced (``failed_open`` counts
    the calls) rather than refusing every envelope with a 500. Logged once when the outage starts
    and once when it ends. Blocks as long as the wrapped counters; raises nothing of its own.
    """

    def __init__(self, counters: QuotaCounters) -> None:
        self.counters = counters
        self.failed_open = 0
        self._failing = False

    async def check_and_increment(self, groups: Sequence[Sequence[CounterRequest]],
                                  now: float) -> list[list[bool]]:
        """See QuotaCounters.check_and_increment; on BackendError, nothing is rejected."""
        try:
            results = await self.counters.check_and_increment(groups, now)
        except BackendError as exc:
            self.failed_open += 1
            if not self._failing:
                self._failing = True
                log.error("quota counters unavailable, accepting without enforcing quotas: %s", exc)
            return [[False] * len(group) for group in groups]
        if self._failing:
            self._failing = False
            log.info("quota counters available again")
        return results
