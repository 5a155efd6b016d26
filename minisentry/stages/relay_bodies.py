"""From a request body to an envelope: what the relay's ingest endpoints accept, and their limits.

``/envelope/`` bodies are parsed as envelopes; ``/minidump/`` uploads (multipart forms, or the raw
dump) become an event with the dump attached (``minidump.py``); legacy ``/store/`` bodies (JSON, or
base64 of zlib JSON) become a one-event envelope. Every event item is held to
``limits.max_event_bytes`` and the attachments to their count and total size.
"""

from __future__ import annotations

import base64
import binascii
import uuid

import orjson

from ..config import LimitsConfig
from ..decoding import BodyDecoder
from ..envelope import Envelope, Item, parse_envelope
from ..errors import BadRequest, InvalidEnvelope, PayloadTooLarge
from ..minidump import minidump_envelope, raw_minidump_envelope
from ..multipart import MultipartLimits, parse_multipart
from .ingest import normalize_event_id

__all__ = ["envelope_event_id", "request_envelope", "store_body_to_envelope"]

#: Content types of a minidump posted as the whole body instead of a form.
_RAW_MINIDUMP_TYPES = ("application/octet-stream", "application/x-dmp")


def request_envelope(body: bytes, endpoint: str, content_type: str | None, limits: LimitsConfig) -> Envelope:
    """The envelope a request body to ``endpoint`` ("envelope", "minidump" or "store") carries, with
    its per-item size limits checked. Blocks on CPU (a minidump may be decompressed: call that one
    off the event loop).

    Raises InvalidEnvelope or BadRequest for a malformed body, PayloadTooLarge past ``limits``.
    """
    if endpoint == "envelope":
        envelope = parse_envelope(body)
    elif endpoint == "minidump":
        multipart_limits = MultipartLimits(
            max_parts=limits.max_attachments_per_envelope + 32, max_file_bytes=limits.max_attachments_bytes,
            max_field_bytes=limits.max_event_bytes)
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type in _RAW_MINIDUMP_TYPES:
            envelope = raw_minidump_envelope(body, max_dump_bytes=limits.max_attachments_bytes,
                                             multipart_limits=multipart_limits)
        else:
            envelope = minidump_envelope(parse_multipart(body, content_type, multipart_limits),
                                         max_dump_bytes=limits.max_attachments_bytes,
                                         multipart_limits=multipart_limits)
    else:
        envelope = store_body_to_envelope(body, limits.max_event_bytes)
    attachments = attachment_bytes = 0
    for item in envelope.items:
        if item.type in ("event", "transaction", "security") and len(item.payload) > limits.max_event_bytes:
            raise PayloadTooLarge(f"{item.type} item exceeds {limits.max_event_bytes} bytes")
        if item.type == "attachment":
            attachments += 1
            attachment_bytes += len(item.payload)
    if attachments > limits.max_attachments_per_envelope:
        raise PayloadTooLarge(f"more than {limits.max_attachments_per_envelope} attachments in one envelope")
    if attachment_bytes > limits.max_attachments_bytes:
        raise PayloadTooLarge(f"attachments exceed {limits.max_attachments_bytes} bytes in one envelope")
    return envelope


def envelope_event_id(envelope: Envelope) -> str | None:
    """Return (and write back normalized) the envelope's event id; make one up for an event without."""
    raw = envelope.headers.get("event_id")
    if raw is not None:
        event_id = normalize_event_id(raw)
        if event_id is None:
            raise InvalidEnvelope(f"invalid event_id {raw!r} in envelope header")
        envelope.headers["event_id"] = event_id
        return event_id
    for item in envelope.items:
        if item.type in ("event", "transaction", "security"):
            try:
                payload = orjson.loads(item.payload)
            except orjson.JSONDecodeError:
                payload = None
            event_id = normalize_event_id(payload.get("event_id")) if isinstance(payload, dict) else None
            event_id = event_id or uuid.uuid4().hex
            envelope.headers["event_id"] = event_id
            return event_id
    return None


def store_body_to_envelope(body: bytes, limit: int) -> Envelope:
    """Wrap a legacy ``/store/`` body (JSON, or base64 of zlib JSON) in a one-item envelope.

    Raises BadRequest for bodies that are neither, PayloadTooLarge past ``limit`` decoded bytes.
    """
    stripped = body.lstrip()
    if stripped[:1] != b"{":
        try:
            compressed = base64.b64decode(stripped, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("store body is neither JSON nor base64-encoded zlib JSON") from exc
        decoder = BodyDecoder("deflate", limit)
        decoder.feed(compressed)
        stripped = decoder.finish()
    try:
        event = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"store body is not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise BadRequest("store body must be a JSON object")
    item_type = "transaction" if event.get("type") == "transaction" else "event"
    headers: dict[str, object] = {}
    if "event_id" in event:
        headers["event_id"] = event["event_id"]
    return Envelope(headers, [Item({"type": item_type}, stripped)])
