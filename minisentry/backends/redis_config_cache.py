"""A :class:`~minisentry.config_cache.ConfigCache` in Redis, shared by every relay."""

from __future__ import annotations

from typing import Any

from ..config_cache import check_project_id
from ..errors import BackendFull
from ..payloads import check_ttl
from .redis_client import check_prefix, make_client, translated

__all__ = ["RedisConfigCache"]


class RedisConfigCache:
    """Project configs under ``{prefix}:projectconfig:{id}``, each expiring ``ttl`` s after its put.

    Calls block for one round trip and raise BackendError when Redis fails; a config over
    ``max_entry_bytes`` raises BackendFull. The number of entries is bounded by the projects that
    exist and by the TTL (and Redis's ``maxmemory``).
    """

    name = "redis"

    def __init__(self, client_or_url: Any, *, prefix: str = "minisentry", socket_timeout: float = 5.0,
                 ttl: float = 300.0, max_entry_bytes: int = 1024 * 1024) -> None:
        self._prefix = check_prefix(prefix) + ":projectconfig:"
        self.ttl = check_ttl(ttl)
        self.max_entry_bytes = max_entry_bytes
        self.client, self.label = make_client(client_or_url, socket_timeout=socket_timeout)

    def get(self, project_id: int) -> bytes | None:
        """See ConfigCache.get."""
        with translated(self.label, "config cache get"):
            return self.client.get(f"{self._prefix}{check_project_id(project_id)}")

    def put(self, project_id: int, data: bytes) -> None:
        """See ConfigCache.put."""
        key = f"{self._prefix}{check_project_id(project_id)}"
        if len(data) > self.max_entry_bytes:
            raise BackendFull(f"project config of {len(data)} bytes is over the cache's entry limit "
                              f"({self.max_entry_bytes} bytes)")
        with translated(self.label, "config cache put"):
            self.client.set(key, bytes(data), px=max(1, int(self.ttl * 1000)))

    def delete(self, project_id: int) -> None:
        """See ConfigCache.delete."""
        with translated(self.label, "config cache delete"):
            self.client.delete(f"{self._prefix}{check_project_id(project_id)}")

    def close(self) -> None:
        """Release the connections. Raises nothing."""
        self.client.close()
