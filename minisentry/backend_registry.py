"""Open the configured shared-state backends (``[backends]``) from the plugins that registered them.

:func:`open_backends` is what the Pipeline calls at startup; :func:`publish_change` is what the CLI
calls after writing the store, so running servers apply the change at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pluggy

from .errors import ConfigError, MinisentryError
from .quota_counters import FailOpenCounters, MemoryQuotaCounters

__all__ = ["Backends", "open_backends", "open_backend", "publish_change", "KINDS"]

log = logging.getLogger("minisentry.backends")

#: ``[backends]`` key -> the hook that registers implementations of it.
KINDS = {
    "payloads": "minisentry_register_payload_stores",
    "quota_counters": "minisentry_register_quota_counters",
    "fanout": "minisentry_register_fanouts",
    "config_cache": "minisentry_register_config_caches",
}


@dataclass
class Backends:
    """The opened backends; ``quota_counters`` of a shared backend fail open (see FailOpenCounters)."""

    payloads: Any
    quota_counters: Any
    fanout: Any
    config_cache: Any

    def close(self) -> None:
        """Close every backend that has a ``close`` (threads, connections). Blocks briefly; raises nothing."""
        for backend in (self.fanout, self.payloads, self.quota_counters, self.config_cache):
            backend = getattr(backend, "counters", backend)  # unwrap FailOpenCounters
            close = getattr(backend, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing must not hide the error that made us close
                    log.exception("closing backend %r failed", backend)


def open_backend(config: Any, pm: pluggy.PluginManager, kind: str) -> Any:
    """Open the implementation named by ``[backends] <kind>``. Blocks while it connects.

    Raises ConfigError for a name no plugin registered (listing the registered ones) or a backend
    that is misconfigured, BackendError when it cannot reach its server, PluginError for a broken plugin.
    """
    from .plugin_manager import collect

    registered = collect(pm, KINDS[kind])
    name = getattr(config.backends, kind)
    if name not in registered:
        raise ConfigError(f"backends.{kind}: unknown backend {name!r} (registered: {', '.join(sorted(registered))})")
    return registered[name].open(config)


def open_backends(config: Any, pm: pluggy.PluginManager) -> Backends:
    """Open every configured backend; on failure, close those already opened and re-raise.

    Blocks (connecting to Redis: run it in a worker thread). Raises what :func:`open_backend` raises.
    """
    opened: dict[str, Any] = {}
    try:
        for kind in KINDS:
            opened[kind] = open_backend(config, pm, kind)
    except BaseException:
        Backends(**{kind: opened.get(kind) for kind in KINDS}).close()
        raise
    if not isinstance(opened["quota_counters"], MemoryQuotaCounters):
        opened["quota_counters"] = FailOpenCounters(opened["quota_counters"])
    return Backends(**opened)


def publish_change(config: Any, pm: pluggy.PluginManager, topic: str) -> str | None:
    """Tell running servers that ``topic`` changed in the store; return a warning, or None if sent.

    Blocks one round trip. Never raises for a backend problem: the store is already written and
    servers still poll it, so a failed publish only delays the change by one poll interval.
    """
    try:
        fanout = open_backend(config, pm, "fanout")
    except MinisentryError as exc:
        return f"running servers will see the change within {config.backends.poll_interval:g}s (poll): {exc}"
    try:
        fanout.publish(topic)
    except MinisentryError as exc:
        return f"running servers will see the change within {config.backends.poll_interval:g}s (poll): {exc}"
    finally:
        fanout.close()
    return None
