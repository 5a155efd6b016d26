"""Starting the alert worker inside a Pipeline: collect and bind the channels, check every target.

Kept out of ``app.py``: the pipeline calls these in the process with the
``store`` role: :func:`make_alert_worker` before its tasks start, :func:`run_alerts` as one of them.
"""

from __future__ import annotations

import logging
from typing import Any

from .alerts import AlertWorker
from .config import Config
from .errors import ConfigError, PluginError
from .plugin_manager import collect

__all__ = ["make_alert_worker", "run_alerts", "bind_channels"]

log = logging.getLogger("minisentry.alerts")


def bind_channels(registered: dict[str, Any], config: Config) -> dict[str, Any]:
    """Bind the channels the rules' targets use and validate every target. Never blocks.

    Raises ConfigError naming the rule and target for an unknown type, an invalid target or a channel
    that cannot run with this config; PluginError when a plugin's ``bind`` or ``validate_target`` breaks.
    """
    bound: dict[str, Any] = {}
    for index, rule in enumerate(config.alerts.rules):
        for number, target in enumerate(rule.targets):
            where = f"alerts.rules[{index}].targets[{number}]"
            kind = target["type"]
            channel = registered.get(kind)
            if channel is None:
                raise ConfigError(f"{where}.type: unknown alert channel {kind!r} "
                                  f"(registered: {', '.join(sorted(registered))})")
            try:
                if hasattr(channel, "validate_target"):
                    channel.validate_target(target)
            except ValueError as exc:
                raise ConfigError(f"{where}{exc}" if str(exc)[:1] in ".:" else f"{where}: {exc}") from exc
            except Exception as exc:
                raise PluginError(f"alert channel {kind!r}: validate_target failed: {exc}") from exc
            if kind in bound:
                continue
            try:
                usable = channel.bind(config) if hasattr(channel, "bind") else channel
            except Exception as exc:
                raise PluginError(f"alert channel {kind!r}: bind failed: {exc}") from exc
            if usable is None:
                raise ConfigError(f"{where}: alert channel {kind!r} is not available with this config")
            bound[kind] = usable
    return bound


def make_alert_worker(pipeline: Any) -> AlertWorker | None:
    """The alert worker for a Pipeline whose store is open, or None. Never blocks.

    Called before any task starts, so a bad target stops startup with a plain ConfigError. The
    channels are bound here; an unused connection pool holds no connection, so a later startup
    failure leaks nothing. Returns None when ``[alerts]`` is off, has no rules, or the store keeps no
    activity log (a plugin's store; logged). Raises what :func:`bind_channels` raises.
    """
    config = pipeline.config
    if not config.alerts.enabled or not config.alerts.rules:
        return None
    store = pipeline.store
    if not (hasattr(store, "activity_after") and hasattr(store, "monitor_failures_after")):
        log.warning("alerts: the store %s keeps no activity log; no alerts are sent", type(store).__name__)
        return None
    channels = bind_channels(collect(pipeline.pm, "minisentry_register_alert_channels", key="type"), config)

    def link_base() -> str:
        server = config.server
        return server.public_url or f"http://{server.host}:{pipeline.port or server.port}"

    return AlertWorker(store, config.alerts, channels, link_base)


async def run_alerts(pipeline: Any, worker: AlertWorker) -> None:
    """Run ``worker`` until the pipeline's shutdown begins (a watcher scope). Never raises but Cancelled."""
    with pipeline.watcher_scope():
        await worker.run()
