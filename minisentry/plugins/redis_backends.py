"""Registers the Redis payload store, quota counters, fan-out and config cache as ``redis``.

redis-py is imported only when one of them is opened, so minisentry runs without the extra.
"""

import importlib

from ..errors import ConfigError
from ..hookspecs import hookimpl


def _redis_module(module: str, config):
    """Import ``backends.<module>``; ConfigError if redis-py is missing or ``[redis] url`` is unset."""
    if not config.redis.url:
        raise ConfigError("a 'redis' backend is selected in [backends] but [redis] url is not set")
    try:
        return importlib.import_module(f"minisentry.backends.{module}")
    except ImportError as exc:
        raise ConfigError(f"a 'redis' backend is selected in [backends] but redis-py is missing: "
                          f"install minisentry[redis] ({exc})") from exc


class RedisPayloads:
    """Payload store ``redis``: ``{prefix}:payload:*`` keys with TTL."""

    name = "redis"

    def open(self, config):
        redis = config.redis
        return _redis_module("redis_payloads", config).RedisPayloadStore(
            redis.url, prefix=redis.prefix, socket_timeout=redis.socket_timeout,
            max_payload_bytes=redis.max_payload_bytes)


class RedisCounters:
    """Quota counters ``redis``: shared by every relay, one Lua script per check."""

    name = "redis"

    def open(self, config):
        redis = config.redis
        return _redis_module("redis_quotas", config).RedisQuotaCounters(
            redis.url, prefix=redis.prefix, socket_timeout=redis.socket_timeout, grace=redis.quota_grace)


class RedisFanouts:
    """Fan-out ``redis``: pub/sub, one listener thread per process."""

    name = "redis"

    def open(self, config):
        redis = config.redis
        return _redis_module("redis_fanout", config).RedisFanout(
            redis.url, prefix=redis.prefix, socket_timeout=redis.socket_timeout,
            max_subscriptions=config.backends.max_subscriptions)


class RedisConfigCaches:
    """Config cache ``redis``: ``{prefix}:projectconfig:*`` keys with TTL."""

    name = "redis"

    def open(self, config):
        redis = config.redis
        return _redis_module("redis_config_cache", config).RedisConfigCache(
            redis.url, prefix=redis.prefix, socket_timeout=redis.socket_timeout,
            ttl=config.backends.config_cache_ttl, max_entry_bytes=config.backends.max_config_bytes)


@hookimpl
def minisentry_register_payload_stores():
    return [RedisPayloads()]


@hookimpl
def minisentry_register_quota_counters():
    return [RedisCounters()]


@hookimpl
def minisentry_register_fanouts():
    return [RedisFanouts()]


@hookimpl
def minisentry_register_config_caches():
    return [RedisConfigCaches()]
