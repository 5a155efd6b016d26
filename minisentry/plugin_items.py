"""Plugin item types, relay endpoints and per-event processors, as the stages use them.

A plugin adds an envelope item type end to end with ``minisentry_register_item_types``: the relay
refuses items over the type's ``max_bytes`` and counts them in its ``data_category`` for quotas;
ingest calls ``parse`` and sends the record on as a :class:`~minisentry.messages.PluginRecord`
(symbolicate and process pass it through; codec.py carries it over Kafka); the store stage writes a
batch of them with the type's ``store(db, records)`` in one transaction of the store's own SQLite
file, after ``migrate(db)`` ran at startup. ``minisentry_register_endpoints`` turns a plain HTTP
POST into one such item, and ``minisentry_process_event`` implementations change processed events
before they are stored. The reference is docs/plugins.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import pluggy

from .codec import summarize
from .errors import InvalidItem, PluginError
from .messages import PluginRecord, ProcessedEvent
from .outcomes import register_item_category
from .plugin_manager import collect

__all__ = ["PluginItems", "MAX_ITEM_BYTES", "run_processors", "apply_processors", "processor_count"]

log = logging.getLogger("minisentry.plugins")

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: The largest ``max_bytes`` an item type may declare: records travel inside stage messages.
MAX_ITEM_BYTES = 1024 * 1024
#: Reserved route names under /api/<project_id>/ that an endpoint may not take.
_RESERVED_ROUTES = frozenset({"envelope", "store", "minidump", "security", "csp-report", "cron"})
#: Event item types per-event processors see (feedback and user reports are not events).
_PROCESSED_TYPES = ("event", "transaction", "security")


@dataclass(frozen=True)
class PluginItems:
    """The item types and endpoints plugins registered, checked once at startup.

    ``types`` maps an item type name to its object, ``endpoints`` a route name to its object.
    """

    types: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> "PluginItems":
        """Collect and check the registered item types and endpoints. Does not block.

        Raises PluginError naming the plugin's object for a bad name, category, size or a missing
        method, a type that is built in, or an endpoint for a type nobody registered.
        """
        types = collect(pm, "minisentry_register_item_types", key="type")
        for name, item_type in types.items():
            category = getattr(item_type, "data_category", None)
            max_bytes = getattr(item_type, "max_bytes", None)
            if not _TYPE_RE.match(name):
                raise PluginError(f"item type {name!r}: the name must match {_TYPE_RE.pattern}")
            if not isinstance(category, str) or not _CATEGORY_RE.match(category):
                raise PluginError(f"item type {name!r}: data_category must match {_CATEGORY_RE.pattern}")
            if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or not 0 < max_bytes <= MAX_ITEM_BYTES:
                raise PluginError(f"item type {name!r}: max_bytes must be an int in 1..{MAX_ITEM_BYTES}")
            for method in ("parse", "migrate", "store"):
                if not callable(getattr(item_type, method, None)):
                    raise PluginError(f"item type {name!r} has no {method}() method")
            register_item_category(name, category)
        endpoints = collect(pm, "minisentry_register_endpoints")
        for name, endpoint in endpoints.items():
            if not _TYPE_RE.match(name) or name in _RESERVED_ROUTES:
                raise PluginError(f"endpoint {name!r}: the name must match {_TYPE_RE.pattern} and not be built in")
            if getattr(endpoint, "item_type", None) not in types:
                raise PluginError(f"endpoint {name!r}: item_type {getattr(endpoint, 'item_type', None)!r} "
                                  f"is not a registered item type")
        return cls(types, endpoints)

    def __bool__(self) -> bool:
        return bool(self.types)

    def parse(self, item_type: str, project_id: int, received: float, payload: bytes,
              headers: dict[str, Any]) -> PluginRecord:
        """Run the type's ``parse`` and wrap the result. Does not block (unless the plugin does).

        Raises InvalidItem: with the plugin's reason, ``invalid_<type>`` for a plain ValueError,
        ``too_large`` past ``max_bytes``, ``plugin_failed`` when the plugin raised anything else or
        returned something that is not a JSON object (that is logged: it is the plugin's bug).
        """
        kind = self.types[item_type]
        if len(payload) > kind.max_bytes:
            raise InvalidItem(f"{item_type} item exceeds {kind.max_bytes} bytes", reason="too_large")
        try:
            record = kind.parse(payload, headers)
        except InvalidItem:
            raise
        except ValueError as exc:
            raise InvalidItem(str(exc), reason=f"invalid_{item_type}") from exc
        except Exception as exc:
            log.exception("item type %s: parse() failed", item_type)
            raise InvalidItem(f"{item_type}: parse failed: {exc}", reason="plugin_failed") from exc
        try:
            # Records cross Kafka and the process boundary as JSON: refuse what would not survive it.
            encoded = orjson.dumps(record)
        except (orjson.JSONEncodeError, TypeError) as exc:
            log.error("item type %s: parse() returned a record that is not JSON: %s", item_type, exc)
            raise InvalidItem(f"{item_type}: record is not JSON", reason="plugin_failed") from exc
        if not isinstance(record, dict) or len(encoded) > 2 * kind.max_bytes + 1024:
            log.error("item type %s: parse() must return a JSON object no larger than about its item", item_type)
            raise InvalidItem(f"{item_type}: parse returned no usable record", reason="plugin_failed")
        record_id = record.get("id")
        return PluginRecord(project_id, item_type, received, record,
                            str(record_id)[:200] if record_id is not None else None)


def processor_count(hook: Any) -> int:
    """How many ``minisentry_process_event`` implementations are registered (0 without hooks)."""
    return len(hook.minisentry_process_event.get_hookimpls()) if hook is not None else 0


def run_processors(hook: Any, project_id: int, data: dict[str, Any]) -> None:
    """Call every ``minisentry_process_event`` implementation on ``data``, each isolated. Never raises.

    Blocks for as long as the plugins take: call it from a worker thread. An implementation that
    raises leaves an ``{"type": "plugin_failed", "plugin": name}`` entry in the event's ``errors``
    and the next one runs; the event is kept.
    """
    for impl in hook.minisentry_process_event.get_hookimpls():
        kwargs = {"project_id": project_id, "event": data}
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as exc:
            log.warning("plugin %s failed on event %s of project %s: %r", impl.plugin_name, data.get("event_id"),
                        project_id, exc)
            errors = data.get("errors")
            if not isinstance(errors, list):
                errors = data["errors"] = []
            errors.append({"type": "plugin_failed", "plugin": impl.plugin_name, "reason": repr(exc)[:200]})


def apply_processors(hook: Any, results: list[Any]) -> list[Any]:
    """Run the per-event processors on a batch's processed events; return the batch. Never raises.

    Blocks (call it from a worker thread). Events come back summarized (``codec.summarize``): their
    JSON is written once here, so a value a plugin added that JSON cannot hold is caught here (the
    event is kept with it as text and a ``plugin_failed`` entry) rather than in the store.
    """
    for result in results:
        if not isinstance(result, ProcessedEvent) or result.item_type not in _PROCESSED_TYPES:
            continue
        data = orjson.loads(result.body) if result.body is not None else result.data
        run_processors(hook, result.project_id, data)
        try:
            body = orjson.dumps(data)
        except (orjson.JSONEncodeError, TypeError) as exc:
            data = orjson.loads(orjson.dumps(data, default=repr))
            data.setdefault("errors", []).append({"type": "plugin_failed", "plugin": "?",
                                                  "reason": f"a plugin left a value JSON cannot hold: {exc}"[:200]})
            body = orjson.dumps(data)
        result.body = None
        result.data = data
        summarize(result)
        result.body = body
    return results
