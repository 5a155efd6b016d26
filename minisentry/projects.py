"""The relay's view of projects and keys: an in-memory copy of the store's key table, kept current.

Lookups never touch the disk. The store is the source of truth and tells the copy when it changed:
every change of a project or key bumps a counter (``config_version``), which :meth:`ProjectKeys.watch`
polls every ``interval`` seconds; when it moved, the whole table is read again in a worker thread
and swapped in at once. So a key disabled or a project created with the CLI reaches a running relay
within a second, no request ever waits for a reload, and there is no expiry to stampede on. The copy
holds exactly the keys the store has: it is bounded by the data.
"""

from __future__ import annotations

import logging
from typing import Callable

import anyio
from anyio.abc import TaskStatus

from .errors import AuthForbidden, MinisentryError
from .fanout import Subscription, pause

__all__ = ["ProjectKeys", "KEY_POLL"]

log = logging.getLogger("minisentry.projects")

#: Seconds between checks of the store's config version.
KEY_POLL = 0.25


class ProjectKeys:
    """Resolve public keys to project ids. ``load`` is a blocking callable returning the key table."""

    def __init__(self, load: Callable[[], dict[str, tuple[int, bool]]]) -> None:
        self._load = load
        self._keys: dict[str, tuple[int, bool]] = {}
        self.version: int | None = None

    def reload(self) -> None:
        """Read the key table now. Blocks on the store."""
        self._keys = self._load()

    async def ensure(self, key: str) -> None:
        """Nothing to do: every key of the store is in memory (``UpstreamProjectKeys`` fetches here)."""

    def entry(self, key: str) -> tuple[int, bool] | None:
        """Return (project id, active) for a key of the store, or None. Never blocks."""
        return self._keys.get(key)

    def known_project_of(self, key: str) -> int | None:
        """Return the project of an active key, or None. Never blocks."""
        entry = self._keys.get(key)
        return entry[0] if entry is not None and entry[1] else None

    def project_of(self, key: str, project_id: int | None) -> int:
        """Return the project id of an active key, checking it matches ``project_id`` if given.

        Never blocks. Raises AuthForbidden for an unknown or disabled key, or a key of another project.
        """
        entry = self._keys.get(key)
        if entry is None:
            raise AuthForbidden("unknown public key")
        owner, active = entry
        if not active:
            raise AuthForbidden("disabled public key")
        if project_id is not None and owner != project_id:
            raise AuthForbidden(f"public key does not belong to project {project_id}")
        return owner

    async def watch(self, load_version: Callable[[], int], *, interval: float = KEY_POLL,
                    wake: Subscription | None = None,
                    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Reload the key table whenever the store's config version moves, until cancelled.

        The version is read every ``interval`` seconds, or at once when ``wake`` (a fan-out
        subscription) receives a publish.

        ``load_version`` blocks and runs in a worker thread. Reports started after the first load.
        A store error is logged and the current copy stays in use.
        """
        started = False
        while True:
            try:
                version = await anyio.to_thread.run_sync(load_version)
                if version != self.version:
                    self._keys = await anyio.to_thread.run_sync(self._load)
                    self.version = version
            except MinisentryError as exc:
                log.error("cannot refresh project keys, keeping the current ones: %s", exc)
            if not started:
                started = True
                task_status.started()
            await pause(wake, interval)
