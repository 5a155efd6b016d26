"""pluggy hook specifications. The reference with a tutorial is docs/plugins.md (a test checks every hook is there)."""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

PROJECT_NAME = "minisentry"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def minisentry_register_channel_backends() -> list[Any]:
    """Return channel backends: objects with ``name`` that build a channel from ``(name, capacity)``."""


@hookspec
def minisentry_register_stores() -> list[Any]:
    """Return event stores: objects with ``name`` and ``open(config, readonly) -> store``."""


@hookspec
def minisentry_register_commands(cli: Any) -> None:
    """Add click commands to the ``minisentry`` command group."""


@hookspec
def minisentry_register_symbolicators() -> list[Any]:
    """Return symbolicators: objects with ``name``, ``async symbolicate(event_message) -> event_message`` and optionally a cheap ``wants(event_message) -> bool``, or with ``bind(config)`` returning one (None: not used)."""


@hookspec
def minisentry_register_payload_stores() -> list[Any]:
    """Return payload stores: objects with ``name`` and ``open(config) -> PayloadStore``."""


@hookspec
def minisentry_register_quota_counters() -> list[Any]:
    """Return quota counters: objects with ``name`` and ``open(config) -> QuotaCounters``."""


@hookspec
def minisentry_register_fanouts() -> list[Any]:
    """Return change fan-outs: objects with ``name`` and ``open(config) -> Fanout``."""


@hookspec
def minisentry_register_config_caches() -> list[Any]:
    """Return project-config caches: objects with ``name`` and ``open(config) -> ConfigCache``."""


@hookspec
def minisentry_register_item_types() -> list[Any]:
    """Return envelope item types: objects with ``type``, ``data_category``, ``max_bytes``, ``parse``, ``migrate``, ``store``."""


@hookspec
def minisentry_register_endpoints() -> list[Any]:
    """Return relay endpoints: objects with ``name`` (``POST /api/<project_id>/<name>/``), ``item_type`` and ``to_item``."""


@hookspec
def minisentry_register_api_routes() -> list[Any]:
    """Return read-API routes: objects with ``name`` (``GET /api/0/plugins/<name>/...``) and ``get(db, path, query)``."""


@hookspec
def minisentry_register_alert_channels() -> list[Any]:
    """Return alert channels: objects with ``type`` and ``async deliver(alert, target)``; optionally ``validate_target``, ``bind(config)``, ``aclose()``."""


@hookspec
def minisentry_process_event(project_id: int, event: dict) -> None:
    """Change one processed event in place before it is stored; raising marks it ``plugin_failed``."""


@hookspec
def minisentry_register_ui_panels() -> list[Any]:
    """Return issue-page panels: objects with ``name``, ``title`` and ``render(issue, db) -> str | Markup`` (a str is escaped)."""
