"""A bounded in-memory cache of loaded files with negative caching and coalesced loads.

Used by the JavaScript symbolicator for parsed source maps and minified sources, but knows
nothing about them: a *loader* returns ``(value, size_in_bytes)`` or raises.

- At most ``max_bytes`` of values (by the sizes loaders report); the least recently used go first.
  A value larger than the whole cache is returned but not kept.
- A load that raises one of ``negative`` is remembered for ``negative_ttl`` seconds: until then
  the same error is raised again without loading (a missing file is not looked up on every frame).
  At most ``max_negative`` such entries, oldest first out.
- Concurrent ``get`` calls for the same key share one load: the first caller loads (in a worker
  thread), the others wait for its result. Waiting is bounded by the callers (one per worker).

Counters (``hits``, ``misses``, ``negative_hits``, ``evictions``, ``coalesced``) feed ``/metrics``.
Use it from one event loop (it is not thread-safe; loads run in threads, bookkeeping does not).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Awaitable, Callable, Hashable

import anyio

__all__ = ["LoadingCache"]


class _Pending:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class LoadingCache:
    """LRU by bytes + negative entries + one load per key at a time. See the module docstring."""

    def __init__(self, *, max_bytes: int, negative_ttl: float, negative: tuple[type[BaseException], ...],
                 max_negative: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        self.max_bytes = max_bytes
        self.negative_ttl = negative_ttl
        self.negative = negative
        self.max_negative = max_negative
        self._clock = clock or anyio.current_time
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._failures: OrderedDict[Hashable, tuple[float, BaseException]] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        self.size = 0
        self.hits = self.misses = self.negative_hits = self.evictions = self.coalesced = 0

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: Hashable, loader: Callable[[], tuple[Any, int]], *, keep: bool = True) -> Any:
        """Return the cached value of ``key``, loading it with ``loader`` in a worker thread if needed.

        ``keep=False`` shares the load with concurrent callers and remembers failures, but does not
        keep the value (for data that may change). Raises what the loader raised (a remembered
        negative error again until it expires).
        """
        return await self.get_async(key, lambda: anyio.to_thread.run_sync(loader), keep=keep)

    async def get_async(self, key: Hashable, loader: Callable[[], Awaitable[tuple[Any, int]]], *,
                        keep: bool = True) -> Any:
        """Like :meth:`get` with an async ``loader`` (run in this task, e.g. an HTTP fetch)."""
        entry = self._values.get(key)
        if entry is not None:
            self._values.move_to_end(key)
            self.hits += 1
            return entry[0]
        failure = self._failures.get(key)
        if failure is not None:
            if self._clock() < failure[0]:
                self.negative_hits += 1
                raise failure[1]
            del self._failures[key]
        pending = self._pending.get(key)
        if pending is not None:
            self.coalesced += 1
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.value
        self.misses += 1
        pending = self._pending[key] = _Pending()
        try:
            value, size = await loader()
        except BaseException as exc:
            pending.error = exc
            if isinstance(exc, self.negative):
                self._remember_failure(key, exc)
            raise
        else:
            pending.value = value
            if keep:
                self._store(key, value, size)
            return value
        finally:
            del self._pending[key]
            pending.done.set()

    def _remember_failure(self, key: Hashable, exc: BaseException) -> None:
        self._failures[key] = (self._clock() + self.negative_ttl, exc)
        while len(self._failures) > self.max_negative:
            self._failures.popitem(last=False)

    def _store(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return  # larger than the whole cache: used once, never kept
        self._values[key] = (value, size)
        self.size += size
        while self.size > self.max_bytes:
            _, (_, evicted) = self._values.popitem(last=False)
            self.size -= evicted
            self.evictions += 1

    def forget(self, key: Hashable) -> None:
        """Drop ``key`` and any remembered failure of it."""
        entry = self._values.pop(key, None)
        if entry is not None:
            self.size -= entry[1]
        self._failures.pop(key, None)

    def statistics(self) -> dict[str, int]:
        """Return the counters and current use."""
        return {"hits": self.hits, "misses": self.misses, "negative_hits": self.negative_hits,
                "evictions": self.evictions, "coalesced": self.coalesced, "entries": len(self._values),
                "bytes": self.size, "negative_entries": len(self._failures)}
