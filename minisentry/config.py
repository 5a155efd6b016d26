"""Load ``minisentry.toml`` into frozen dataclasses, validating everything up front.

Unknown keys and wrong types are :class:`~minisentry.errors.ConfigError` naming the key
(``storage.pathh``). Relative paths are resolved against the config file's folder. A string value
written as ``{ env = "NAME" }`` is read from the environment variable ``NAME`` (for secrets).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from .clientip import parse_networks
from .errors import ConfigError
from .lanes import lane_config_of
from .quotas import quotas_from_config
from .relayauth import parse_public_key
from .config_scaling import (BackendsConfig, KafkaConfig, RedisConfig, RelayConfig, UpstreamConfig,
                             _validate_backends, _validate_kafka, check_upstream)
from .config_native import NativeConfig, validate_native
from .config_alerts import AlertsConfig, alerts_from_mapping
from .config_sourcemaps import SourcemapsConfig, validate_sourcemaps
from .filters import FilterSettings
from .scrubbing import ScrubbingSettings

__all__ = [
    "Config",
    "ServerConfig",
    "LimitsConfig",
    "StorageConfig",
    "ChannelsConfig",
    "StagesConfig",
    "LanesConfig",
    "SpoolConfig",
    "ApiConfig",
    "ProjectConfig",
    "RedisConfig",
    "BackendsConfig",
    "UpstreamConfig",
    "RelayConfig",
    "SourcemapsConfig",
    "check_upstream",
    "load_config",
    "config_from_dict",
]

_KEY_RE = re.compile(r"[0-9a-f]{32}")
STAGE_EDGES = ("ingest", "symbolicate", "symbolicate_slow", "process", "store")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """``[server]``: the HTTP front door."""

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "trio"
    public_url: str = ""
    max_connections: int = 1024
    max_header_bytes: int = 65536
    max_pipelined_requests: int = 64
    read_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    trusted_proxies: list[str] = field(default_factory=list)
    #: How old (or how far in the future) a ``[[relays]]`` request signature may be, in seconds.
    relay_signature_max_age: float = 300.0


@dataclass(frozen=True, kw_only=True)
class LimitsConfig:
    """``[limits]``: sizes in bytes, applied after decompression."""

    max_event_bytes: int = 1024 * 1024
    max_envelope_bytes: int = 200 * 1024 * 1024
    max_api_body_bytes: int = 1024 * 1024
    max_attachments_bytes: int = 100 * 1024 * 1024
    max_attachments_per_envelope: int = 100


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """``[storage]``: the event store (``backend`` names a registered store; SQLite by default)."""

    backend: str = "sqlite"
    path: Path = Path("minisentry.sqlite")
    batch_size: int = 1000


@dataclass(frozen=True, kw_only=True)
class ChannelsConfig:
    """``[channels]``: which channel backend and how many messages each edge may buffer."""

    backend: str = "memory"
    capacity: int = 2048
    capacities: dict[str, int] = field(default_factory=dict)

    def capacity_of(self, edge: str) -> int:
        """Return the configured capacity of the channel feeding stage ``edge``."""
        return self.capacities.get(edge, self.capacity)


@dataclass(frozen=True, kw_only=True)
class StagesConfig:
    """``[stages]``: per-stage concurrency and the relay's wait before answering 429."""

    concurrency: dict[str, int] = field(default_factory=dict)
    process_workers: int = 0
    enqueue_timeout: float = 0.5
    retry_after: int = 2
    drain_timeout: float = 10.0
    stale_after: float = 30.0
    symbolicate_deadline: float = 60.0
    monitor_check_interval: float = 10.0

    def concurrency_of(self, stage: str) -> int:
        """Return how many workers run stage ``stage`` (default 1)."""
        return self.concurrency.get(stage, 1)


@dataclass(frozen=True, kw_only=True)
class SpoolConfig:
    """``[spool]``: an on-disk buffer for bursts the pipeline cannot take; off unless ``path`` is set."""

    path: Path | None = None
    max_bytes: int = 256 * 1024 * 1024
    max_age: float = 3600.0


@dataclass(frozen=True, kw_only=True)
class LanesConfig:
    """``[lanes]``: the slow lane for projects whose events take too long (see ``lanes.py``)."""

    bucket_seconds: float = 10.0
    window_seconds: float = 300.0
    budget: float = 5.0
    backoff_seconds: float = 600.0
    max_projects: int = 10_000
    max_lane_switches: int = 1
    force_slow: list[int] = field(default_factory=list)
    force_fast: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """``[api]``: read-only bearer tokens for the ``/api/0/`` web API (scopes org:read, project:read, event:read)."""

    tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """``[web]``: the server-rendered web UI under ``/ui/`` (users come from ``minisentry users create``)."""

    enabled: bool = True
    #: Seconds a sign-in lasts.
    session_max_age: float = 14 * 24 * 3600.0
    #: Add ``Secure`` to the session cookie (set this when served over HTTPS).
    secure_cookies: bool = False
    #: At most this many stored sessions; past it the oldest are signed out.
    max_sessions: int = 10_000
    #: Issues per page of the issue stream (at most 100).
    page_size: int = 25
    #: Failed sign-ins for one email within ``login_window`` seconds before the form answers 429.
    login_attempts: int = 5
    #: Failed sign-ins from one client address (any email) within ``login_window`` before 429.
    login_address_attempts: int = 20
    #: The sliding window, in seconds, over which failed sign-ins are counted.
    login_window: float = 900.0
    #: At most this many emails and addresses are tracked (least recently failed forgotten first).
    login_tracked: int = 10_000


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    """``[retention]``: how long events are kept (0 switches a rule off). Issues keep their counts."""

    #: Events and transactions received longer ago than this many days are deleted.
    days: float = 90.0
    #: A project keeps at most this many events; the oldest beyond it are deleted.
    max_events_per_project: int = 0
    #: Seconds between pruning rounds (run by the process with the store role).
    interval: float = 60.0
    #: Rows deleted per transaction; a round runs at most ``max_batches`` of them.
    batch: int = 1000
    max_batches: int = 10


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """``[[projects]]``: a project and its 32-hex public keys, seeded into the store at startup."""

    id: int
    slug: str
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole validated configuration; ``source`` is the file it came from, if any."""

    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    lanes: LanesConfig = field(default_factory=LanesConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    web: WebConfig = field(default_factory=WebConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    backends: BackendsConfig = field(default_factory=BackendsConfig)
    projects: list[ProjectConfig] = field(default_factory=list)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    sourcemaps: SourcemapsConfig = field(default_factory=SourcemapsConfig)
    native: NativeConfig = field(default_factory=NativeConfig)
    relays: list[RelayConfig] = field(default_factory=list)
    quotas: tuple[Any, ...] = ()
    scrubbing: Any = field(default_factory=lambda: ScrubbingSettings())
    filters: Any = field(default_factory=lambda: FilterSettings())
    plugins: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def replace(self, **sections: Any) -> "Config":
        """Return a copy with whole sections or nested fields replaced (``server={"port": 0}``)."""
        changes = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, dict) and dataclasses.is_dataclass(current):
                value = dataclasses.replace(current, **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file. Blocks on file I/O.

    Raises ConfigError if the file is missing, is not TOML, or holds an invalid or unknown key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, base_dir=path.resolve().parent, source=path, label=str(path))


def config_from_dict(
    raw: dict[str, Any], *, base_dir: Path | None = None, source: Path | None = None, label: str = "config"
) -> Config:
    """Validate a parsed config mapping; relative paths resolve against ``base_dir`` (or the cwd).

    Raises ConfigError naming the offending key.
    """
    base_dir = base_dir or Path.cwd()
    known = {f.name for f in dataclasses.fields(Config)} - {"source"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{label}: unknown key '{key}'")
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.name in ("source", "projects", "relays", "plugins", "quotas", "scrubbing", "filters", "alerts") \
                or f.name not in raw:
            continue
        cls = get_type_hints(Config)[f.name]
        sections[f.name] = _build(cls, raw[f.name], f.name, label)
    if "filters" in raw:
        sections["filters"] = FilterSettings.from_mapping(raw["filters"], "filters")
    if "scrubbing" in raw:
        sections["scrubbing"] = ScrubbingSettings.from_mapping(raw["scrubbing"], "scrubbing", label=label)
    if "alerts" in raw:
        sections["alerts"] = alerts_from_mapping(raw["alerts"], label, _build)
    if "quotas" in raw:
        sections["quotas"] = quotas_from_config(raw["quotas"], label=label)
    if "plugins" in raw:
        plugins = _check_type(raw["plugins"], dict[str, Any], "plugins", label)
        sections["plugins"] = {name: _resolve_env(value, f"plugins.{name}", label) for name, value in plugins.items()}
    projects_raw = raw.get("projects", [])
    if not isinstance(projects_raw, list):
        raise ConfigError(f"{label}: 'projects' must be an array of tables ([[projects]])")
    sections["projects"] = [
        _build(ProjectConfig, item, f"projects[{index}]", label) for index, item in enumerate(projects_raw)
    ]
    relays_raw = raw.get("relays", [])
    if not isinstance(relays_raw, list):
        raise ConfigError(f"{label}: 'relays' must be an array of tables ([[relays]])")
    sections["relays"] = [_build(RelayConfig, item, f"relays[{index}]", label) for index, item in enumerate(relays_raw)]
    config = Config(source=source, **sections)
    storage_path = config.storage.path
    if not storage_path.is_absolute():
        config = config.replace(storage={"path": (base_dir / storage_path).resolve()})
    spool_path = config.spool.path
    if spool_path is not None and not spool_path.is_absolute():
        config = config.replace(spool={"path": (base_dir / spool_path).resolve()})
    artifacts = config.sourcemaps.path
    if artifacts is None:
        # Uploads live next to the event store unless configured otherwise.
        config = config.replace(sourcemaps={"path": config.storage.path.parent / "artifacts"})
    elif not artifacts.is_absolute():
        config = config.replace(sourcemaps={"path": (base_dir / artifacts).resolve()})
    credentials = config.upstream.credentials
    if credentials is not None and not credentials.is_absolute():
        config = config.replace(upstream={"credentials": (base_dir / credentials).resolve()})
    _validate(config, label)
    return config


def _build(cls: type, raw: Any, where: str, label: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: {where!r} must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(f"{label}: unknown key '{where}.{key}'")
        values[key] = _check_type(_resolve_env(value, f"{where}.{key}", label), hints[key], f"{where}.{key}", label)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{label}: {where} is missing required key(s) {', '.join(missing)}") from exc


def _resolve_env(value: Any, where: str, label: str) -> Any:
    if isinstance(value, dict) and set(value) == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or name not in os.environ:
            raise ConfigError(f"{label}: {where} reads environment variable {name!r}, which is not set")
        return os.environ[name]
    if isinstance(value, list):
        return [_resolve_env(item, where, label) for item in value]
    if isinstance(value, dict):
        return {key: _resolve_env(item, f"{where}.{key}", label) for key, item in value.items()}
    return value


def _check_type(value: Any, hint: Any, where: str, label: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if hint == Path | None:
        hint = Path
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{label}: {where} must be a string path")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label}: {where} must be a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{label}: {where} must be {hint.__name__}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{label}: {where} must be a list")
        (item_hint,) = get_args(hint)
        return [_check_type(item, item_hint, f"{where}[{i}]", label) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{label}: {where} must be a table")
        _, value_hint = get_args(hint)
        return {k: _check_type(v, value_hint, f"{where}.{k}", label) for k, v in value.items()}
    raise ConfigError(f"{label}: {where} has an unsupported type")  # pragma: no cover - programming error


def _validate(config: Config, label: str) -> None:
    def positive(where: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{label}: {where} must be greater than 0, got {value!r}")

    server = config.server
    if not 0 <= server.port <= 65535:
        raise ConfigError(f"{label}: server.port must be 0..65535, got {server.port}")
    if server.backend not in ("trio", "asyncio"):
        raise ConfigError(f"{label}: server.backend must be 'trio' or 'asyncio', got {server.backend!r}")
    try:
        parse_networks(server.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"{label}: server.trusted_proxies: {exc}") from exc
    for name in ("max_connections", "max_header_bytes", "max_pipelined_requests", "read_timeout", "keepalive_timeout"):
        positive(f"server.{name}", getattr(server, name))
    for f in dataclasses.fields(LimitsConfig):
        positive(f"limits.{f.name}", getattr(config.limits, f.name))
    positive("storage.batch_size", config.storage.batch_size)
    for name in ("session_max_age", "max_sessions", "page_size", "login_attempts", "login_address_attempts",
                 "login_window", "login_tracked"):
        positive(f"web.{name}", getattr(config.web, name))
    if config.web.page_size > 100:
        raise ConfigError(f"{label}: web.page_size must be at most 100, got {config.web.page_size}")
    positive("channels.capacity", config.channels.capacity)
    for edge, capacity in config.channels.capacities.items():
        if edge not in STAGE_EDGES:
            raise ConfigError(f"{label}: unknown key 'channels.capacities.{edge}' (stages: {', '.join(STAGE_EDGES)})")
        positive(f"channels.capacities.{edge}", capacity)
    for stage, count in config.stages.concurrency.items():
        if stage not in STAGE_EDGES:
            raise ConfigError(f"{label}: unknown key 'stages.concurrency.{stage}' (stages: {', '.join(STAGE_EDGES)})")
        positive(f"stages.concurrency.{stage}", count)
    if config.stages.concurrency.get("store", 1) != 1:
        raise ConfigError(f"{label}: stages.concurrency.store must be 1 (one writer per store)")
    _validate_kafka(config.kafka, label, positive)
    retention = config.retention
    if retention.days < 0 or retention.max_events_per_project < 0:
        raise ConfigError(f"{label}: retention.days and retention.max_events_per_project must be >= 0 (0: off)")
    for name in ("interval", "batch", "max_batches"):
        positive(f"retention.{name}", getattr(retention, name))
    positive("stages.enqueue_timeout", config.stages.enqueue_timeout)
    if not 0 <= config.stages.process_workers <= 64:
        raise ConfigError(f"{label}: stages.process_workers must be 0..64, got {config.stages.process_workers}")
    if not 1 <= config.stages.retry_after <= 10:
        raise ConfigError(f"{label}: stages.retry_after must be 1..10 seconds (short, so SDKs come back soon)")
    positive("stages.drain_timeout", config.stages.drain_timeout)
    positive("stages.stale_after", config.stages.stale_after)
    positive("stages.symbolicate_deadline", config.stages.symbolicate_deadline)
    positive("stages.monitor_check_interval", config.stages.monitor_check_interval)
    positive("spool.max_bytes", config.spool.max_bytes)
    positive("spool.max_age", config.spool.max_age)
    if config.spool.path is not None and config.spool.path == config.storage.path:
        raise ConfigError(f"{label}: spool.path must not be the store's file ({config.spool.path})")
    positive("server.relay_signature_max_age", server.relay_signature_max_age)
    check_upstream(config, label)
    seen_relays: set[str] = set()
    for index, relay in enumerate(config.relays):
        if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}", relay.id) or relay.id in seen_relays:
            raise ConfigError(f"{label}: relays[{index}].id must be a unique relay id (a UUID), got {relay.id!r}")
        seen_relays.add(relay.id)
        try:
            parse_public_key(relay.public_key)
        except ValueError as exc:
            raise ConfigError(f"{label}: relays[{index}].public_key: {exc}") from exc
    lanes = config.lanes
    try:
        lane_config_of(lanes)
    except ValueError as exc:
        raise ConfigError(f"{label}: lanes: {exc}") from exc
    both = set(lanes.force_slow) & set(lanes.force_fast)
    if both:
        raise ConfigError(f"{label}: lanes.force_slow and lanes.force_fast both name project(s) {sorted(both)}")
    _validate_backends(config, label, positive)
    validate_sourcemaps(config, label, positive)
    validate_native(config, label, positive)
    seen_ids: set[int] = set()
    seen_slugs: set[str] = set()
    seen_keys: set[str] = set()
    for index, project in enumerate(config.projects):
        where = f"projects[{index}]"
        if project.id <= 0 or project.id in seen_ids:
            raise ConfigError(f"{label}: {where}.id must be a unique positive integer, got {project.id}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", project.slug) or project.slug in seen_slugs:
            raise ConfigError(f"{label}: {where}.slug must be a unique lowercase slug, got {project.slug!r}")
        for key in project.keys:
            if not _KEY_RE.fullmatch(key) or key in seen_keys:
                raise ConfigError(f"{label}: {where}.keys: {key!r} is not a unique 32-hex public key")
            seen_keys.add(key)
        seen_ids.add(project.id)
        seen_slugs.add(project.slug)
