"""The relay's view of projects and keys: an in-memory copy of the store's key table.

Lookups never touch the disk on the hot path. A key not in the copy triggers a reload from the
store at most once per ``reload_interval`` seconds, so a project created with
``minisentry projects create`` is served without a restart, while a flood of unknown keys costs at
most one reload a second. A known key's entry is refreshed when the copy is older than ``max_age``
seconds, so a key disabled in the store is refused soon after. The copy holds exactly the keys the
store has: it is bounded by the data.
"""

from __future__ import annotations

import time
from typing import Callable

import anyio

from .errors import AuthForbidden

__all__ = ["ProjectKeys", "KEY_REFRESH"]

#: Seconds after which the relay re-reads the key table even for known keys.
KEY_REFRESH = 10.0


class ProjectKeys:
    """Resolve public keys to project ids. ``load`` is a blocking callable returning the key table."""

    def __init__(self, load: Callable[[], dict[str, tuple[int, bool]]], reload_interval: float = 1.0,
                 max_age: float = KEY_REFRESH) -> None:
        self._load = load
        self._keys: dict[str, tuple[int, bool]] = {}
        self._loaded_at = float("-inf")
        self._miss_reload_at = float("-inf")
        self.reload_interval = reload_interval
        self.max_age = max_age

    def reload(self) -> None:
        """Reload the key table now. Blocks on the store."""
        self._keys = self._load()
        self._loaded_at = time.monotonic()

    def known_project_of(self, key: str) -> int | None:
        """Return the project of an active key already in the copy, without reloading. Never blocks."""
        entry = self._keys.get(key)
        return entry[0] if entry is not None and entry[1] else None

    async def project_of(self, key: str, project_id: int | None) -> int:
        """Return the project id of an active key, checking it matches ``project_id`` if given.

        Raises AuthForbidden for an unknown or disabled key, or a key of another project.
        """
        entry = self._keys.get(key)
        now = time.monotonic()
        miss = entry is None and now - self._miss_reload_at >= self.reload_interval
        if miss or now - self._loaded_at >= self.max_age:
            if miss:
                self._miss_reload_at = now
            self._loaded_at = now
            self._keys = await anyio.to_thread.run_sync(self._load)
            entry = self._keys.get(key)
        if entry is None:
            raise AuthForbidden("unknown public key")
        owner, active = entry
        if not active:
            raise AuthForbidden("disabled public key")
        if project_id is not None and owner != project_id:
            raise AuthForbidden(f"public key does not belong to project {project_id}")
        return owner
