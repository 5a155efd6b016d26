"""Log and span item containers: ``log`` items are kept, ``span`` items are counted.

Both carry many records in one item: a JSON object ``{"items": [...]}`` whose length the item header
``item_count`` declares (SDKs size their client reports by it). A container whose ``item_count``
disagrees with its items is invalid as a whole. Log records keep timestamp, level, body, trace and
span ids and attributes, and wait in a bounded queue for the store stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["LogRecord", "ContainerError", "container_items", "parse_logs", "scrub_logs", "MAX_CONTAINER_ITEMS"]

#: More records than this in one container are refused (a bound on one item's work).
MAX_CONTAINER_ITEMS = 10_000
_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal")


class ContainerError(ValueError):
    """A container item that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log record of a project."""

    project_id: int
    timestamp: float
    level: str
    body: str
    trace_id: str | None
    span_id: str | None
    attributes: str  # JSON


def container_items(headers: dict[str, Any], payload: bytes) -> list[Any]:
    """Return the container's records after checking ``item_count``. Raises ContainerError."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContainerError(f"container is not JSON: {exc}") from exc
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ContainerError("container has no items array")
    if len(items) > MAX_CONTAINER_ITEMS:
        raise ContainerError(f"more than {MAX_CONTAINER_ITEMS} records in one container")
    declared = headers.get("item_count")
    if declared is not None and declared != len(items):
        raise ContainerError(f"item_count says {declared!r} but the container holds {len(items)} records")
    return items


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def parse_logs(project_id: int, items: list[Any], received: float) -> list[LogRecord]:
    """Turn container records into LogRecords; records that are not objects are skipped. Never raises."""
    records = []
    for item in items:
        if not isinstance(item, dict):
            continue
        timestamp = item.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
            timestamp = received
        level = _text(item.get("level"), 16)
        level = level.lower() if level and level.lower() in _LEVELS else "info"
        attributes = item.get("attributes")
        records.append(LogRecord(
            project_id, float(timestamp), level, _text(item.get("body"), 8192) or "",
            _text(item.get("trace_id"), 32), _text(item.get("span_id"), 16),
            orjson.dumps(attributes if isinstance(attributes, dict) else {}).decode()[:65536],
        ))
    return records


def scrub_logs(records: list[LogRecord], scrubbing: Any) -> list[LogRecord]:
    """Scrub log bodies and attributes with the event scrubber's rules. Blocks on CPU (run in a thread).

    A record is scrubbed as an event whose message is its body and whose ``extra`` holds its
    attributes, so the same default, sensitive-field and advanced rules apply. A record the scrubber
    cannot handle is dropped rather than stored unscrubbed; the count of those is returned by the
    length difference.
    """
    from dataclasses import replace

    from .errors import ScrubbingError
    from .scrubbing import scrubber_for

    scrubber = scrubber_for(scrubbing)
    if not scrubber.active:
        return records
    result = []
    for record in records:
        try:
            scrubbed = scrubber.scrub({"logentry": {"formatted": record.body}, "extra": orjson.loads(record.attributes)})
        except ScrubbingError:
            continue
        body = (scrubbed.get("logentry") or {}).get("formatted") or ""
        result.append(replace(record, body=body, attributes=orjson.dumps(scrubbed.get("extra") or {}).decode()))
    return result
