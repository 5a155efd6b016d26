"""Sentry's minidump upload (``POST /api/<project_id>/minidump/``) turned into an envelope.

Crash reporters (Breakpad, Crashpad, Electron, the native SDKs) post ``multipart/form-data``: the
minidump in the field ``upload_file_minidump`` (possibly gzip/bzip2/xz/zstd-compressed, or nested in
Electron's own form body: ``minidump_payloads.py``), and optionally other files (kept as
attachments) and event data, applied in this order:

- ``__sentry-event``: a msgpack event (native SDKs); ``__sentry-breadcrumb1``/``2``: its breadcrumbs;
- ``sentry`` and ``sentry___<namespace>`` fields: event JSON, merged object by object;
  ``sentry__1``, ``sentry__2``, ...: one event JSON cut into numbered chunks;
- ``sentry[key][sub]`` fields setting single values (Crashpad's way: ``sentry[tags][build]=42``);
- other plain fields go to the event's ``extra``.

A JSON field that does not parse is noted in the event's ``errors`` and the crash is kept (as
Relay does). :func:`minidump_envelope` makes one envelope: an ``event`` item (platform ``native``,
level ``fatal``, a placeholder exception ``Minidump: EXCEPTION`` until the dump is processed) and
the raw minidump as an ``attachment`` item of type ``event.minidump``; the ``__sentry-*`` payloads are
not kept. A dump posted as the whole body (``application/octet-stream``) is handled by
:func:`raw_minidump_envelope`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

from .envelope import Envelope, Item
from .jsonbody import json_object
from .errors import InvalidMultipart
from .minidump_payloads import MINIDUMP_FIELD, merge_breadcrumbs, read_msgpack_event, unpack_minidump
from .multipart import MultipartLimits, Part
from .stages.ingest import normalize_event_id

__all__ = ["MINIDUMP_FIELD", "EVENT_FIELD", "BREADCRUMB_FIELDS", "minidump_envelope", "raw_minidump_envelope"]

#: A native SDK's msgpack event, and the two halves of its breadcrumb ring buffer.
EVENT_FIELD = "__sentry-event"
BREADCRUMB_FIELDS = ("__sentry-breadcrumb1", "__sentry-breadcrumb2")
_SENTRY_KEY_RE = re.compile(r"sentry((?:\[[^\[\]]{1,200}\]){1,8})")
#: ``sentry___<namespace>``: more event JSON; ``sentry__<n>``: the event JSON cut into numbered chunks.
_NAMESPACE_RE = re.compile(r"sentry___[\w.-]{1,100}")
_CHUNK_RE = re.compile(r"sentry__(\d{1,4})")
_PLACEHOLDER = {"type": "Minidump", "value": "EXCEPTION",
                "mechanism": {"type": "minidump", "handled": False, "synthetic": True}}


def _text(part: Part) -> str:
    try:
        return part.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMultipart(f"form field {part.name[:100]!r} is not UTF-8 text") from None


def _set_path(event: dict[str, Any], form_key: str, path: list[str], value: str) -> None:
    target = event
    for step in path[:-1]:
        child = target.setdefault(step, {})
        if not isinstance(child, dict):
            raise InvalidMultipart(f"form field {form_key[:200]!r}: {step!r} is already set to a plain value")
        target = child
    target[path[-1]] = value


#: How deep JSON fields are merged object by object; below that a value replaces what is there.
_MERGE_DEPTH = 16


def _merge(event: dict[str, Any], extra: dict[str, Any], depth: int = 0) -> None:
    # Objects merge key by key (tags from two sources both survive); anything else is replaced.
    for key, value in extra.items():
        current = event.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and depth < _MERGE_DEPTH:
            _merge(current, value, depth + 1)
        else:
            event[key] = value


def _json_field(event: dict[str, Any], errors: list[dict[str, Any]], name: str, data: bytes) -> None:
    # A crash report is worth more than its metadata: a broken field is noted, not fatal (as in Relay).
    try:
        _merge(event, json_object(data, f"form field {name[:100]!r}", InvalidMultipart))
    except InvalidMultipart as exc:
        errors.append({"type": "invalid_data", "name": name[:100], "reason": exc.detail[:200]})


def _event_from_fields(parts: list[Part], consumed: set[int]) -> tuple[dict[str, Any], dict[str, str]]:
    event: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    payload = next((p for p in parts if p.name == EVENT_FIELD), None)
    if payload is not None:
        consumed.add(id(payload))
        event = read_msgpack_event(payload.data)
    chunks: list[tuple[int, bytes]] = []
    extra: dict[str, str] = {}
    for part in parts:
        if id(part) in consumed or part.filename is not None or part.name in (MINIDUMP_FIELD, *BREADCRUMB_FIELDS):
            continue
        consumed.add(id(part))
        if part.name == "sentry" or _NAMESPACE_RE.fullmatch(part.name):
            _json_field(event, errors, part.name, part.data)
        elif (chunk := _CHUNK_RE.fullmatch(part.name)) is not None:
            chunks.append((int(chunk.group(1)), part.data))
        elif (match := _SENTRY_KEY_RE.fullmatch(part.name)) is not None:
            _set_path(event, part.name, match.group(1)[1:-1].split("]["), _text(part))
        else:
            extra[part.name] = _text(part)
    if chunks:
        _json_field(event, errors, "sentry__N", b"".join(data for _, data in sorted(chunks, key=lambda c: c[0])))
    if errors:
        current = event.get("errors")
        event["errors"] = [*(current if isinstance(current, list) else []), *errors]
    return event, extra


def minidump_envelope(parts: list[Part], *, max_dump_bytes: int = 100 * 1024 * 1024,
                      multipart_limits: MultipartLimits | None = None) -> Envelope:
    """Build the envelope for one minidump upload (see the module docstring). Never blocks.

    Raises InvalidMultipart with the outcome reason: ``missing_minidump_upload`` (no
    ``upload_file_minidump``), ``invalid_minidump`` (not a minidump), ``invalid_compression``,
    ``invalid_msgpack`` (a ``__sentry-*`` payload), ``invalid_multipart`` (a field that is not
    UTF-8 or clashes); PayloadTooLarge when the dump inflates past ``max_dump_bytes``.
    """
    minidump = next((p for p in parts if p.name == MINIDUMP_FIELD), None)
    if minidump is None:
        raise InvalidMultipart(f"missing minidump: no field {MINIDUMP_FIELD!r} in the upload",
                               reason="missing_minidump_upload")
    dump = unpack_minidump(minidump.data, max_dump_bytes, multipart_limits)
    consumed = {id(minidump)}
    event, extra = _event_from_fields(parts, consumed)
    crumb_parts = {p.name: p for p in parts if p.name in BREADCRUMB_FIELDS}
    if crumb_parts:
        consumed.update(id(p) for p in crumb_parts.values())
        crumbs = merge_breadcrumbs(*(crumb_parts[name].data if name in crumb_parts else None
                                     for name in BREADCRUMB_FIELDS))
        event["breadcrumbs"] = {"values": crumbs}
    if extra:
        current = event.get("extra")
        event["extra"] = {**(current if isinstance(current, dict) else {}), **extra}
    event.setdefault("platform", "native")
    event.setdefault("level", "fatal")
    if not event.get("exception"):
        event["exception"] = {"values": [dict(_PLACEHOLDER)]}
    event_id = normalize_event_id(event.get("event_id")) or uuid.uuid4().hex
    event["event_id"] = event_id
    try:
        items = [Item({"type": "event"}, orjson.dumps(event))]
    except TypeError as exc:  # nested deeper than JSON encoding goes
        raise InvalidMultipart(f"the event fields cannot be encoded: {exc}") from exc
    items.append(Item({"type": "attachment", "attachment_type": "event.minidump",
                       "filename": minidump.filename or "minidump.dmp",
                       "content_type": minidump.content_type or "application/octet-stream"}, dump))
    for part in parts:
        if id(part) not in consumed and part.filename is not None:
            items.append(Item({"type": "attachment", "attachment_type": "event.attachment",
                               "filename": part.filename or part.name,
                               "content_type": part.content_type or "application/octet-stream"}, part.data))
    return Envelope({"event_id": event_id}, items)


def raw_minidump_envelope(body: bytes, *, max_dump_bytes: int = 100 * 1024 * 1024,
                          multipart_limits: MultipartLimits | None = None) -> Envelope:
    """The envelope for a dump posted as the whole body (``application/octet-stream`` or ``x-dmp``).

    Raises like :func:`minidump_envelope`.
    """
    return minidump_envelope([Part(MINIDUMP_FIELD, "minidump.dmp", "application/octet-stream", body)],
                             max_dump_bytes=max_dump_bytes, multipart_limits=multipart_limits)
