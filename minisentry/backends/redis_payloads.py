"""A :class:`~minisentry.payloads.PayloadStore` in Redis: one string key per payload, with PX expiry."""

from __future__ import annotations

from typing import Any

from ..errors import BackendFull
from ..payloads import check_ttl
from .redis_client import check_prefix, make_client, translated

__all__ = ["RedisPayloadStore"]


class RedisPayloadStore:
    """Payloads under ``{prefix}:payload:{key}``, each expiring after its ttl (rounded up to 1 ms).

    Every call blocks for one round trip (bounded by ``socket_timeout``) and raises BackendError
    when Redis fails. A payload over ``max_payload_bytes`` raises BackendFull without a round trip:
    Redis itself is bounded by its ``maxmemory`` and the TTLs, this limit keeps one caller from
    filling it. Building it with a URL connects once (raises BackendError naming the URL).
    """

    name = "redis"

    def __init__(self, client_or_url: Any, *, prefix: str = "minisentry", socket_timeout: float = 5.0,
                 max_payload_bytes: int = 64 * 1024 * 1024) -> None:
        self._prefix = check_prefix(prefix) + ":payload:"
        self.max_payload_bytes = max_payload_bytes
        self.client, self.label = make_client(client_or_url, socket_timeout=socket_timeout)

    def put(self, key: str, data: bytes, ttl: float) -> None:
        """See PayloadStore.put."""
        milliseconds = max(1, int(check_ttl(ttl) * 1000 + 0.999))
        if len(data) > self.max_payload_bytes:
            raise BackendFull(f"payload of {len(data)} bytes is over redis.max_payload_bytes "
                              f"({self.max_payload_bytes})")
        with translated(self.label, "payload put"):
            self.client.set(self._prefix + key, bytes(data), px=milliseconds)

    def get(self, key: str) -> bytes | None:
        """See PayloadStore.get."""
        with translated(self.label, "payload get"):
            return self.client.get(self._prefix + key)

    def delete(self, key: str) -> None:
        """See PayloadStore.delete."""
        with translated(self.label, "payload delete"):
            self.client.delete(self._prefix + key)

    def close(self) -> None:
        """Release the connections. Raises nothing."""
        self.client.close()
