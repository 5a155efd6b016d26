"""Sentry envelopes: parse and serialize. Pure functions, no I/O.

An envelope is a JSON header line followed by items; each item is a JSON header line and a payload.
A payload is either exactly ``length`` bytes (then an optional newline) or, without ``length``, the
bytes up to the next newline or the end. Unknown item types and unknown headers are kept as they are:
deciding what to do with them is the pipeline's job, not the parser's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import InvalidEnvelope

__all__ = ["Envelope", "Item", "parse_envelope", "serialize_envelope", "MAX_ITEMS"]

#: An envelope with more items than this is refused (a bound on the work one request can cause).
MAX_ITEMS = 10_000


@dataclass(slots=True)
class Item:
    """One envelope item: its header object and raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        """The item's ``type`` header (always a string after parsing)."""
        return self.headers["type"]

    def json(self) -> Any:
        """Decode the payload as JSON. Raises InvalidEnvelope if it is not valid JSON."""
        try:
            return orjson.loads(self.payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidEnvelope(f"item of type {self.type!r} is not valid JSON: {exc}") from exc


@dataclass(slots=True)
class Envelope:
    """A parsed envelope: header object (``event_id``, ``dsn``, ``sent_at``, ...) and items."""

    headers: dict[str, Any] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)

    @property
    def event_id(self) -> str | None:
        """The envelope header's ``event_id``, if it is a string."""
        value = self.headers.get("event_id")
        return value if isinstance(value, str) else None


def _header(data: bytes, start: int, what: str) -> tuple[dict[str, Any], int]:
    end = data.find(b"\n", start)
    if end == -1:
        end = len(data)
    line = data[start:end]
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEnvelope(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidEnvelope(f"{what} must be a JSON object")
    try:
        # orjson reads deeper nesting than it writes; refuse what serialize_envelope could not write.
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InvalidEnvelope(f"{what} is nested too deeply") from exc
    # A header on the last line may lack its newline; the payload then starts at the end.
    return value, min(end + 1, len(data))


def parse_envelope(data: bytes) -> Envelope:
    """Parse envelope bytes. Does not block.

    Raises InvalidEnvelope when the header or an item header is not a JSON object (or is nested
    too deeply to be serialized again), an item has no string ``type``, a ``length`` is not a
    non-negative integer or runs past the end, or there are more than ``MAX_ITEMS`` items.
    """
    if not data.strip():
        raise InvalidEnvelope("empty envelope")
    headers, pos = _header(data, 0, "envelope header")
    items: list[Item] = []
    size = len(data)
    while pos < size:
        if data[pos:pos + 1] == b"\n":
            # Blank lines between or after items carry nothing; SDKs emit a trailing newline.
            pos += 1
            continue
        if len(items) >= MAX_ITEMS:
            raise InvalidEnvelope(f"envelope has more than {MAX_ITEMS} items")
        item_headers, pos = _header(data, pos, f"header of item {len(items)}")
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise InvalidEnvelope(f"item {len(items)} has no string 'type' header")
        length = item_headers.get("length")
        if length is None:
            end = data.find(b"\n", pos)
            if end == -1:
                end = size
            payload = data[pos:end]
            pos = end + 1
        else:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise InvalidEnvelope(f"item {len(items)} has an invalid length {length!r}")
            if pos + length > size:
                raise InvalidEnvelope(
                    f"item {len(items)} declares length {length} but only {max(size - pos, 0)} bytes remain"
                )
            payload = data[pos:pos + length]
            pos += length
            if pos < size and data[pos:pos + 1] == b"\n":
                pos += 1
        items.append(Item(item_headers, payload))
    return Envelope(headers, items)


def serialize_envelope(envelope: Envelope) -> bytes:
    """Serialize an envelope, writing an explicit ``length`` on every item. Does not block."""
    parts = [orjson.dumps(envelope.headers), b"\n"]
    for item in envelope.items:
        headers = dict(item.headers)
        headers["length"] = len(item.payload)
        parts += [orjson.dumps(headers), b"\n", item.payload, b"\n"]
    return b"".join(parts)
