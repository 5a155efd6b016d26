"""The config sections for running at scale: Kafka channels, Redis, shared backends, stacked relays.

Part of config.py's validation (which imports and re-exports everything here); kept apart so each
module stays small. Same rules: frozen dataclasses, unknown keys and bad values are ConfigError
naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .relayauth import load_credentials

if TYPE_CHECKING:
    from .config import Config

__all__ = ["KafkaConfig", "RedisConfig", "BackendsConfig", "UpstreamConfig", "RelayConfig", "check_upstream"]


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    """``[kafka]``: the broker and topics when ``channels.backend = "kafka"`` (see backends/kafka.py)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    #: Topics are ``<topic_prefix>.<stage>`` (plus ``.dlq``); consumer groups ``<group_prefix>.<stage>``.
    topic_prefix: str = "minisentry"
    group_prefix: str = "minisentry"
    partitions: int = 8
    replication_factor: int = 1
    #: Messages larger than this travel through the payload store ([backends] payloads) as a key.
    payload_threshold: int = 256 * 1024
    payload_ttl: float = 86400.0
    #: Seconds between offset commits (each preceded by a producer flush).
    commit_interval: float = 0.5
    #: Seconds a produced message may take to reach the broker before it counts as failed.
    delivery_timeout: float = 30.0
    #: Messages the producer may hold locally before ``send`` waits.
    producer_queue: int = 20_000
    session_timeout: float = 10.0
    #: Dead-letter topics keep at most this many bytes per partition, for at most this many seconds.
    dead_letter_max_bytes: int = 256 * 1024 * 1024
    dead_letter_retention: float = 7 * 86400.0
    #: Extra librdkafka settings for producers and consumers (e.g. security.protocol, sasl.*).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """``[redis]``: the Redis the ``redis`` backends share (``url`` may be ``{ env = "NAME" }``)."""

    url: str = ""
    prefix: str = "minisentry"
    socket_timeout: float = 5.0
    max_payload_bytes: int = 64 * 1024 * 1024
    quota_grace: int = 60


@dataclass(frozen=True, kw_only=True)
class BackendsConfig:
    """``[backends]``: which registered implementation holds payloads, quota counters, fan-out, configs."""

    payloads: str = "memory"
    quota_counters: str = "memory"
    fanout: str = "memory"
    config_cache: str = "memory"
    poll_interval: float = 0.25
    config_cache_ttl: float = 300.0
    max_config_bytes: int = 1024 * 1024
    max_subscriptions: int = 64
    memory_max_payload_bytes: int = 256 * 1024 * 1024
    memory_max_quota_keys: int = 100_000
    memory_max_configs: int = 10_000


@dataclass(frozen=True, kw_only=True)
class UpstreamConfig:
    """``[upstream]``: run as an edge relay forwarding to another minisentry (off unless ``url`` is set).

    ``max_retries`` attempts follow the first, ``retry_initial`` seconds apart at first, doubling up
    to ``retry_max`` (with jitter); then the envelope goes to the ``[spool]``. Project configs are
    cached for ``project_ttl`` seconds (unknown keys for ``project_negative_ttl``), at most
    ``max_projects`` keys.
    """

    url: str = ""
    credentials: Path | None = None
    timeout: float = 10.0
    max_concurrency: int = 8
    max_retries: int = 4
    retry_initial: float = 0.1
    retry_max: float = 10.0
    project_ttl: float = 60.0
    project_negative_ttl: float = 5.0
    max_projects: int = 10_000


@dataclass(frozen=True, kw_only=True)
class RelayConfig:
    """``[[relays]]``: a downstream relay whose signed requests this instance accepts."""

    id: str
    public_key: str


def _validate_kafka(kafka: KafkaConfig, label: str, positive: Any) -> None:
    for name in ("partitions", "replication_factor", "payload_threshold", "payload_ttl", "commit_interval",
                 "delivery_timeout", "producer_queue", "session_timeout", "dead_letter_max_bytes",
                 "dead_letter_retention"):
        positive(f"kafka.{name}", getattr(kafka, name))
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", kafka.topic_prefix):
        raise ConfigError(f"{label}: kafka.topic_prefix must be letters, digits, '.', '_' or '-', got {kafka.topic_prefix!r}")


def _validate_backends(config: Config, label: str, positive: Any) -> None:
    # Backend names are checked when the backends are opened: plugins register them.
    redis, backends = config.redis, config.backends
    if redis.url and not redis.url.startswith(("redis://", "rediss://", "unix://")):
        # Show the scheme only: whatever else is there may hold the password.
        scheme = redis.url.partition("://")[0] if "://" in redis.url else "(none)"
        scheme = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", scheme) else "(unrecognised)"
        raise ConfigError(f"{label}: redis.url must start with redis://, rediss:// or unix://, got scheme {scheme!r}")
    if not re.fullmatch(r"[^\s:](?:[^\s]*[^\s:])?", redis.prefix):
        raise ConfigError(f"{label}: redis.prefix must be non-empty, without whitespace or ':' at either end, "
                          f"got {redis.prefix!r}")
    for name in ("socket_timeout", "max_payload_bytes"):
        positive(f"redis.{name}", getattr(redis, name))
    if redis.quota_grace < 0:
        raise ConfigError(f"{label}: redis.quota_grace must be >= 0, got {redis.quota_grace}")
    for name in ("payloads", "quota_counters", "fanout", "config_cache"):
        if not getattr(backends, name):
            raise ConfigError(f"{label}: backends.{name} must name a registered backend, got ''")
    for name in ("poll_interval", "config_cache_ttl", "max_config_bytes", "max_subscriptions",
                 "memory_max_payload_bytes", "memory_max_quota_keys", "memory_max_configs"):
        positive(f"backends.{name}", getattr(backends, name))


def check_upstream(config: Config, label: str = "config") -> None:
    """Validate ``[upstream]``, reading its credentials file if a URL is set. Blocks on file I/O.

    Called at load and again by ``serve --upstream``. Raises ConfigError naming the key.
    """
    upstream = config.upstream
    for name in ("timeout", "retry_initial", "retry_max", "project_ttl", "project_negative_ttl"):
        if getattr(upstream, name) <= 0:
            raise ConfigError(f"{label}: upstream.{name} must be greater than 0, got {getattr(upstream, name)!r}")
    if not 1 <= upstream.max_concurrency <= 256:
        raise ConfigError(f"{label}: upstream.max_concurrency must be 1..256, got {upstream.max_concurrency}")
    if not 0 <= upstream.max_retries <= 100:
        raise ConfigError(f"{label}: upstream.max_retries must be 0..100, got {upstream.max_retries}")
    if upstream.max_projects <= 0:
        raise ConfigError(f"{label}: upstream.max_projects must be greater than 0, got {upstream.max_projects}")
    if not upstream.url:
        return
    if not re.fullmatch(r"https?://[^/\s?#]+/?", upstream.url):
        raise ConfigError(f"{label}: upstream.url must be http(s)://host[:port], got {upstream.url!r}")
    if upstream.credentials is None:
        raise ConfigError(f"{label}: upstream.credentials is required with upstream.url "
                          "(create it with `minisentry relay credentials PATH`)")
    load_credentials(upstream.credentials)
