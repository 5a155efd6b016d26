"""Stage messages as bytes, for channels that leave the process (Kafka) and come back.

A record is one JSON header line, then the binary parts the header measures::

    {"v":1,"t":"event",...,"parts":[1200, 35]}\\n<payload bytes><attachment bytes>

Binary parts (event payloads, attachments, envelopes) travel byte for byte and are never
re-encoded. A processed event travels as its JSON body plus the few summary fields the store and
its kill-switches read (the same split the process workers use), so the store writes the body as is.
"""

from __future__ import annotations

from typing import Any

import orjson

from .envelope import parse_envelope, serialize_envelope
from .errors import CodecError, InvalidEnvelope
from .messages import Attachment, EnvelopeMessage, EventMessage, PluginRecord, ProcessedEvent

__all__ = ["encode_message", "decode_message", "summarize", "SUMMARY_FIELDS"]

_VERSION = 1

#: What the store and the store-side kill-switches read of a processed event's data.
SUMMARY_FIELDS = ("platform", "release", "environment", "level", "transaction", "start_timestamp", "type")


def summarize(event: ProcessedEvent) -> ProcessedEvent:
    """Move the event's data into ``body`` (JSON) and keep only the summary fields in ``data``.

    Does not block; idempotent (an event already summarized is returned as it is).
    """
    if event.body is not None:
        return event
    data = event.data
    event.body = orjson.dumps(data)
    summary = {key: data[key] for key in SUMMARY_FIELDS if key in data}
    op = ((data.get("contexts") or {}).get("trace") or {}).get("op")
    if op is not None:
        summary["contexts"] = {"trace": {"op": op}}
    event.data = summary
    return event


def _attachment_headers(attachments: list[Attachment]) -> list[list[str]]:
    return [[a.filename, a.content_type, a.attachment_type] for a in attachments]


def encode_message(message: Any) -> bytes:
    """Serialize an EnvelopeMessage, EventMessage, ProcessedEvent or PluginRecord. Does not block.

    Raises CodecError for any other type or for headers that cannot be written as JSON.
    """
    parts: list[bytes]
    if isinstance(message, EnvelopeMessage):
        header: dict[str, Any] = {"t": "envelope", "project_id": message.project_id,
                                  "public_key": message.public_key, "received": message.received,
                                  "remote_addr": message.remote_addr}
        try:
            parts = [serialize_envelope(message.envelope)]
        except (InvalidEnvelope, orjson.JSONEncodeError) as exc:
            raise CodecError(f"envelope cannot be encoded: {exc}") from exc
    elif isinstance(message, EventMessage):
        header = {"t": "event", "project_id": message.project_id, "event_id": message.event_id,
                  "item_type": message.item_type, "received": message.received, "remote_addr": message.remote_addr,
                  "errors": message.errors, "lane_switches": message.lane_switches,
                  "has_attachments": message.has_attachments, "sent_at": message.sent_at,
                  "attachments": _attachment_headers(message.attachments)}
        parts = [message.payload, *(a.data for a in message.attachments)]
    elif isinstance(message, ProcessedEvent):
        summarize(message)
        header = {"t": "processed", "project_id": message.project_id, "event_id": message.event_id,
                  "item_type": message.item_type, "received": message.received, "timestamp": message.timestamp,
                  "data": message.data, "group_hash": message.group_hash, "title": message.title,
                  "culprit": message.culprit, "level": message.level, "metadata": message.metadata,
                  "attachments": _attachment_headers(message.attachments)}
        parts = [message.body or b"", *(a.data for a in message.attachments)]
    elif isinstance(message, PluginRecord):
        # A plugin item type's record (plugin_items.py): its JSON is the one part.
        header = {"t": "plugin_record", "project_id": message.project_id, "item_type": message.item_type,
                  "received": message.received, "record_id": message.record_id}
        try:
            parts = [orjson.dumps(message.record)]
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise CodecError(f"plugin record cannot be encoded: {exc}") from exc
    else:
        raise CodecError(f"cannot encode a {type(message).__name__}")
    header["v"] = _VERSION
    header["parts"] = [len(part) for part in parts]
    try:
        head = orjson.dumps(header)
    except orjson.JSONEncodeError as exc:
        raise CodecError(f"message header cannot be encoded: {exc}") from exc
    return b"".join([head, b"\n", *parts])


def _split(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    line, sep, rest = data.partition(b"\n")
    header = orjson.loads(line)
    if not sep or not isinstance(header, dict) or header.get("v") != _VERSION:
        raise ValueError("not a minisentry message record")
    sizes = header["parts"]
    if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes) \
            or sum(sizes) != len(rest):
        raise ValueError("part sizes do not match the record")
    parts, offset = [], 0
    for size in sizes:
        parts.append(rest[offset:offset + size])
        offset += size
    return header, parts


def _attachments(header: dict[str, Any], blobs: list[bytes]) -> list[Attachment]:
    described = header["attachments"]
    if len(described) != len(blobs):
        raise ValueError("attachment count does not match the parts")
    return [Attachment(str(name), str(content_type), str(kind), blob)
            for (name, content_type, kind), blob in zip(described, blobs)]


def decode_message(data: bytes) -> Any:
    """Rebuild the message :func:`encode_message` wrote. Does not block.

    Raises CodecError for anything else: truncated, garbled, another version, a wrong shape.
    """
    try:
        header, parts = _split(bytes(data))
        kind = header["t"]
        if kind == "envelope":
            return EnvelopeMessage(int(header["project_id"]), str(header["public_key"]), float(header["received"]),
                                   parse_envelope(parts[0]), header["remote_addr"])
        if kind == "event":
            return EventMessage(
                project_id=int(header["project_id"]), event_id=str(header["event_id"]),
                item_type=str(header["item_type"]), received=float(header["received"]), payload=parts[0],
                remote_addr=header["remote_addr"], errors=list(header["errors"]),
                lane_switches=int(header["lane_switches"]), has_attachments=bool(header["has_attachments"]),
                sent_at=header["sent_at"], attachments=_attachments(header, parts[1:]))
        if kind == "processed":
            data_fields = header["data"]
            if not isinstance(data_fields, dict):
                raise ValueError("data must be an object")
            return ProcessedEvent(
                project_id=int(header["project_id"]), event_id=str(header["event_id"]),
                item_type=str(header["item_type"]), received=float(header["received"]),
                timestamp=float(header["timestamp"]), data=data_fields, group_hash=header["group_hash"],
                title=str(header["title"]), culprit=str(header["culprit"]), level=str(header["level"]),
                metadata=dict(header["metadata"]), body=parts[0], attachments=_attachments(header, parts[1:]))
        if kind == "plugin_record":
            record = orjson.loads(parts[0])
            record_id = header["record_id"]
            if not isinstance(record, dict) or not (record_id is None or isinstance(record_id, str)):
                raise ValueError("a plugin record must be an object with a string id or none")
            return PluginRecord(int(header["project_id"]), str(header["item_type"]), float(header["received"]),
                                record, record_id)
        raise ValueError(f"unknown message type {kind!r}")
    except (orjson.JSONDecodeError, InvalidEnvelope, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CodecError(f"undecodable message record: {exc}") from exc
