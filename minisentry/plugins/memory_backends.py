"""Registers the in-process payload store, quota counters, fan-out and config cache as ``memory``."""

from ..config_cache import MemoryConfigCache
from ..fanout import MemoryFanout
from ..hookspecs import hookimpl
from ..payloads import MemoryPayloadStore
from ..quota_counters import MemoryQuotaCounters


class MemoryPayloads:
    """Payload store ``memory``: at most ``backends.memory_max_payload_bytes`` in this process."""

    name = "memory"

    def open(self, config) -> MemoryPayloadStore:
        return MemoryPayloadStore(config.backends.memory_max_payload_bytes)


class MemoryCounters:
    """Quota counters ``memory``: each relay process counts alone (``backends.memory_max_quota_keys``)."""

    name = "memory"

    def open(self, config) -> MemoryQuotaCounters:
        return MemoryQuotaCounters(config.backends.memory_max_quota_keys)


class MemoryFanouts:
    """Fan-out ``memory``: wakes watchers of this process only; other processes poll."""

    name = "memory"

    def open(self, config) -> MemoryFanout:
        return MemoryFanout(config.backends.max_subscriptions)


class MemoryConfigCaches:
    """Config cache ``memory``: ``backends.memory_max_configs`` entries, least recently used evicted."""

    name = "memory"

    def open(self, config) -> MemoryConfigCache:
        return MemoryConfigCache(ttl=config.backends.config_cache_ttl, max_entries=config.backends.memory_max_configs,
                                 max_entry_bytes=config.backends.max_config_bytes)


@hookimpl
def minisentry_register_payload_stores():
    return [MemoryPayloads()]


@hookimpl
def minisentry_register_quota_counters():
    return [MemoryCounters()]


@hookimpl
def minisentry_register_fanouts():
    return [MemoryFanouts()]


@hookimpl
def minisentry_register_config_caches():
    return [MemoryConfigCaches()]
