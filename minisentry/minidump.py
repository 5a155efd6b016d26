"""Sentry's minidump upload (``POST /api/<project_id>/minidump/``) turned into an envelope.

Crash reporters (Breakpad, Crashpad, Electron) post ``multipart/form-data``: the minidump in the
file field ``upload_file_minidump``, and optionally other files (kept as attachments), a ``sentry``
field holding event JSON, ``sentry[key][sub]`` fields setting single event values (Crashpad's way:
``sentry[tags][build]=42``) and other plain fields (kept in the event's ``extra``).

:func:`minidump_envelope` makes one envelope: an ``event`` item (platform ``native``, level
``fatal``, a placeholder exception ``Minidump: EXCEPTION`` until native symbolication exists) and
the minidump as an ``attachment`` item of type ``event.minidump``, so it is stored with the event
and shown by ``minisentry events attachments``. Parsing the minidump itself is another issue.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

from .envelope import Envelope, Item
from .jsonbody import json_object
from .errors import InvalidMultipart
from .multipart import Part
from .stages.ingest import normalize_event_id

__all__ = ["MINIDUMP_FIELD", "minidump_envelope"]

#: The form field holding the minidump (Sentry's and Breakpad's name).
MINIDUMP_FIELD = "upload_file_minidump"
#: A minidump starts with ``MDMP`` (little-endian writers) or ``PMDM`` (big-endian).
_MAGICS = (b"MDMP", b"PMDM")
_SENTRY_KEY_RE = re.compile(r"sentry((?:\[[^\[\]]{1,200}\]){1,8})")
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


def minidump_envelope(parts: list[Part]) -> Envelope:
    """Build the envelope for one minidump upload. Never blocks.

    Raises InvalidMultipart when there is no ``upload_file_minidump`` file, it is not a minidump
    (no ``MDMP`` header), the ``sentry`` field is not a JSON object, or a field is not UTF-8.
    """
    minidump = next((p for p in parts if p.name == MINIDUMP_FIELD and p.filename is not None), None)
    if minidump is None:
        raise InvalidMultipart(f"missing minidump: no file field {MINIDUMP_FIELD!r} in the upload")
    if minidump.data[:4] not in _MAGICS:
        raise InvalidMultipart(f"{MINIDUMP_FIELD} is not a minidump (it does not start with 'MDMP')")
    event: dict[str, Any] = {}
    sentry_json = next((p for p in parts if p.name == "sentry" and p.filename is None), None)
    if sentry_json is not None:
        event = json_object(sentry_json.data, "form field 'sentry'", InvalidMultipart)
    attachments = [minidump]
    extra: dict[str, str] = {}
    for part in parts:
        if part is minidump or part is sentry_json:
            continue
        if part.filename is not None:
            attachments.append(part)
            continue
        match = _SENTRY_KEY_RE.fullmatch(part.name)
        if match is not None:
            _set_path(event, part.name, match.group(1)[1:-1].split("]["), _text(part))
        else:
            extra[part.name] = _text(part)
    if extra:
        current = event.get("extra")
        event["extra"] = {**(current if isinstance(current, dict) else {}), **extra}
    event.setdefault("platform", "native")
    event.setdefault("level", "fatal")
    if not event.get("exception"):
        event["exception"] = {"values": [dict(_PLACEHOLDER)]}
    event_id = normalize_event_id(event.get("event_id")) or uuid.uuid4().hex
    event["event_id"] = event_id
    items = [Item({"type": "event"}, orjson.dumps(event))]
    for part in attachments:
        is_minidump = part is minidump
        items.append(Item({
            "type": "attachment",
            "attachment_type": "event.minidump" if is_minidump else "event.attachment",
            "filename": part.filename or ("minidump.dmp" if is_minidump else part.name),
            "content_type": part.content_type or "application/octet-stream",
        }, part.data))
    return Envelope({"event_id": event_id}, items)
