"""The plugin manager: one per Pipeline (never a process-global), built-ins plus entry points.

Built-in behaviour ships as ordinary plugin modules listed in ``DEFAULT_PLUGINS``; third-party
packages register under the entry-point group ``minisentry``. Registries collected from hooks are
checked once at startup: two backends with the same name are a PluginError naming both plugins.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "make_plugin_manager", "collect", "describe_plugins", "PluginInfo"]

DEFAULT_PLUGINS = (
    "minisentry.plugins.memory_channels",
    "minisentry.plugins.kafka_channels",
    "minisentry.plugins.sqlite_store",
    "minisentry.plugins.memory_backends",
    "minisentry.plugins.redis_backends",
    "minisentry.plugins.javascript",
    "minisentry.plugins.native",
    "minisentry.plugins.alerts",
)
ENTRY_POINT_GROUP = "minisentry"

log = logging.getLogger("minisentry.plugins")
#: Set to a comma-separated list of entry-point plugin names to load only those ("" loads none).
LOAD_PLUGINS_ENV = "MINISENTRY_LOAD_PLUGINS"


def _wanted_entry_points() -> set[str] | None:
    """The entry-point plugin names MINISENTRY_LOAD_PLUGINS allows, or None (unset: all of them)."""
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def make_plugin_manager(*, entry_points: bool = True, extra: tuple[Any, ...] = ()) -> pluggy.PluginManager:
    """Return a new plugin manager with the built-ins, entry-point plugins and ``extra`` plugins.

    Entry-point plugins are all that are installed, or only those named in MINISENTRY_LOAD_PLUGINS
    when it is set (as datasette's DATASETTE_LOAD_PLUGINS): a way to run a server without an
    installed plugin, or to find out which one misbehaves. Built-ins always load.
    Raises PluginError naming the plugin that failed to import or register.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        wanted = _wanted_entry_points()
        installed = metadata.entry_points(group=ENTRY_POINT_GROUP)
        if wanted:
            missing = wanted - {entry_point.name for entry_point in installed}
            if missing:
                # A typo would otherwise silently run without the plugin the operator asked for.
                log.warning("%s names plugins that are not installed: %s", LOAD_PLUGINS_ENV, ", ".join(sorted(missing)))
        for entry_point in installed:
            if pm.has_plugin(entry_point.name) or (wanted is not None and entry_point.name not in wanted):
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc}") from exc
            pm.register(plugin, name=entry_point.name)
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin implements an unknown hook: {exc}") from exc
    return pm


def collect(pm: pluggy.PluginManager, hook_name: str, *, key: str = "name") -> dict[str, Any]:
    """Call a ``register_*`` hook and return its objects by ``name`` (or by the attribute ``key``).

    Raises PluginError if a plugin raises, returns something without a name, or two share a name.
    """
    found: dict[str, tuple[Any, str]] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        try:
            registered = impl.function() or []
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {exc}") from exc
        for obj in registered:
            name = getattr(obj, key, None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {impl.plugin_name!r} registered an object without a {key} in {hook_name}")
            if name in found:
                raise PluginError(
                    f"{hook_name}: {name!r} registered by both {found[name][1]!r} and {impl.plugin_name!r}"
                )
            found[name] = (obj, impl.plugin_name)
    return {name: obj for name, (obj, _) in found.items()}


@dataclass(frozen=True)
class PluginInfo:
    """What ``minisentry plugins`` shows for one plugin."""

    name: str
    version: str
    hooks: tuple[str, ...]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Return each registered plugin with its distribution version and implemented hooks."""
    dists = {}
    for plugin, dist in pm.list_plugin_distinfo():
        dists[id(plugin)] = dist
    own_version = metadata.version("minisentry") if _installed("minisentry") else "dev"
    infos = []
    for name, plugin in pm.list_name_plugin():
        hooks = tuple(sorted(impl_name for impl_name in dir(plugin) if impl_name.startswith("minisentry_")
                             and callable(getattr(plugin, impl_name))))
        dist = dists.get(id(plugin))
        version = dist.version if dist is not None else own_version
        infos.append(PluginInfo(name, version, hooks))
    return infos


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
