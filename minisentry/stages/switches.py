"""Kill-switch checks as the stages make them: the fields of one event, and one call per switch.

Each switch declares its fields (``killswitches.SWITCHES``); this module fills them from what a stage
has at hand: the raw payload before processing (parsed here only when a switch is on), the normalized
event after. A disabled switch costs one dict lookup.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from ..killswitches import SWITCHES, event_type_of
from ..messages import EventMessage

__all__ = ["peek", "hits"]


def peek(payload: bytes) -> dict[str, Any] | None:
    """Parse a raw event payload for its fields; None when it is not a JSON object. Never raises."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def hits(switches: Any, name: str, message: EventMessage, data: Mapping[str, Any] | None, **extra: Any) -> bool:
    """Return whether kill-switch ``name`` matches this event. Never blocks or raises for bad data.

    ``data`` is the event as parsed so far (raw payload or normalized event); ``extra`` supplies
    fields the event dict does not hold (``has_attachments``).
    """
    if switches is None or not switches.enabled(name):
        return False
    available = {
        "project_id": message.project_id,
        "event_id": message.event_id,
        "event_type": event_type_of(message.item_type, data),
        "platform": _text(data.get("platform")) if data else None,
        "release": _text(data.get("release")) if data else None,
        "level": _text(data.get("level")) if data else None,
        "has_attachments": message.has_attachments,
        **extra,
    }
    return switches.matches(name, **{field: available[field] for field in SWITCHES[name].fields})
