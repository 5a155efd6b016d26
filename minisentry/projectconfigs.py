"""The edge relay's view of projects and keys, fetched from the upstream and cached.

:class:`UpstreamProjectKeys` answers the same synchronous lookups as ``projects.ProjectKeys``
(``project_of``, ``known_project_of``) once :meth:`~UpstreamProjectKeys.ensure` has made sure the
key is cached. A miss costs one request to the upstream (concurrent misses of one key share it);
afterwards the key is served from memory:

- a known key for ``ttl`` seconds, then :meth:`~UpstreamProjectKeys.refresh` (a background task)
  fetches it again, in batches; requests keep using the old entry meanwhile, and keep using it
  while the upstream is unreachable (a relay should not start refusing SDKs because its upstream
  blinked). Keys nobody asked for during ``IDLE_TTLS`` × ``ttl`` are dropped instead of refreshed.
- an unknown key (the upstream has no config for it) for ``negative_ttl`` seconds, answered 403.

Bounded: at most ``max_keys`` entries; the least recently used one is evicted to make room. A
miss while the upstream is unreachable raises PipelineFull (429 with Retry-After: try later).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from .errors import AuthForbidden, PipelineFull, UpstreamError

__all__ = ["UpstreamProjectKeys", "IDLE_TTLS"]

log = logging.getLogger("minisentry.projectconfigs")

#: A key unused for this many TTLs is dropped instead of refreshed.
IDLE_TTLS = 10
_BATCH = 100


@dataclass(slots=True)
class _Entry:
    project_id: int | None  # None: the upstream does not know the key
    active: bool
    expires: float
    used: float


def _entry_of(config: dict[str, Any] | None, key: str, expires: float, now: float) -> _Entry:
    """Read Sentry's project-config shape: ``projectId``, ``disabled``, ``publicKeys[].isEnabled``."""
    if config is None or not isinstance(config.get("projectId"), int):
        return _Entry(None, False, expires, now)
    enabled = any(isinstance(k, dict) and k.get("publicKey") == key and k.get("isEnabled", True) is True
                  for k in config.get("publicKeys") or ())
    return _Entry(config["projectId"], enabled and not config.get("disabled", False), expires, now)


class UpstreamProjectKeys:
    """Public key → project, from the upstream's project configs. Lookups never block.

    ``fetch`` is ``UpstreamClient.project_configs``. ``clock`` is monotonic seconds.
    """

    def __init__(self, fetch: Callable[[list[str]], Awaitable[dict[str, dict[str, Any] | None]]], *,
                 ttl: float, negative_ttl: float, max_keys: int, retry_after: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_keys = max_keys
        self.retry_after = retry_after
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # One pending fetch per key; bounded by the requests being answered (server.max_connections).
        self._pending: dict[str, anyio.Event] = {}
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def ensure(self, key: str) -> None:
        """Make sure ``key`` is cached, fetching it from the upstream if needed. Blocks on the network.

        Raises PipelineFull when the key is not cached and the upstream cannot be asked.
        """
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None:
            entry.used = now
            self._entries.move_to_end(key)
            if entry.expires > now or entry.project_id is not None:
                return  # fresh, or known and waiting for the background refresh
        event = self._pending.get(key)
        if event is not None:
            await event.wait()
            if key in self._entries:
                return
            raise PipelineFull("cannot fetch the project config from the upstream", retry_after=self.retry_after)
        event = self._pending[key] = anyio.Event()
        try:
            await self._load([key])
        except UpstreamError as exc:
            log.warning("cannot fetch project config for key %s...: %s", key[:8], exc)
            raise PipelineFull("cannot fetch the project config from the upstream",
                               retry_after=self.retry_after) from exc
        finally:
            del self._pending[key]
            event.set()

    async def _load(self, keys: list[str]) -> None:
        self.fetches += 1
        configs = await self._fetch(keys)
        now = self.clock()
        for key in keys:
            config = configs.get(key)
            old = self._entries.get(key)
            entry = _entry_of(config, key, now + (self.ttl if config is not None else self.negative_ttl), now)
            if old is not None:
                entry.used = old.used
            self._put(key, entry)

    def _put(self, key: str, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def known_project_of(self, key: str) -> int | None:
        """Return the project of a cached, active key, or None. Never blocks."""
        entry = self._entries.get(key)
        return entry.project_id if entry is not None and entry.active else None

    def project_of(self, key: str, project_id: int | None) -> int:
        """Return the project id of a cached active key, checking it matches ``project_id`` if given.

        Never blocks. Raises AuthForbidden for an unknown or disabled key, or a key of another project.
        """
        entry = self._entries.get(key)
        if entry is None or entry.project_id is None:
            raise AuthForbidden("unknown public key")
        if not entry.active:
            raise AuthForbidden("disabled public key")
        if project_id is not None and entry.project_id != project_id:
            raise AuthForbidden(f"public key does not belong to project {project_id}")
        return entry.project_id

    async def refresh(self, *, interval: float | None = None,
                      task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refetch expired known keys in batches, every ``interval`` (default ttl/4) seconds, until cancelled.

        Upstream errors are logged; the old entries stay in use.
        """
        task_status.started()
        while True:
            await anyio.sleep(interval if interval is not None else self.ttl / 4)
            await self.refresh_once()

    async def refresh_once(self) -> None:
        """One round of :meth:`refresh`: drop idle keys, refetch expired ones. Blocks on the network."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if e.used + IDLE_TTLS * self.ttl < now]:
            del self._entries[key]
        due = [k for k, e in self._entries.items() if e.project_id is not None and e.expires <= now]
        for start in range(0, len(due), _BATCH):
            try:
                await self._load(due[start:start + _BATCH])
            except UpstreamError as exc:
                log.warning("cannot refresh %d project configs, keeping the cached ones: %s", len(due), exc)
                return
