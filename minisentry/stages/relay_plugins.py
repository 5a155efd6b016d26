"""The relay's part of plugin item types: their own endpoints and the size check of their items.

Plugins register item types and endpoints (``minisentry_register_item_types`` /
``minisentry_register_endpoints``, see plugin_items.py); the relay calls these two functions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from ..auth import key_from_headers, key_from_query
from ..clientip import client_ip
from ..envelope import Envelope, Item
from ..errors import AuthMissing, BadRequest, InvalidItem, PayloadTooLarge
from ..httpserver import Request
from ..outcomes import Outcome, category_of_item

if TYPE_CHECKING:
    from .relay import Relay

__all__ = ["plugin_endpoint", "drop_oversized"]


async def plugin_endpoint(relay: "Relay", request: Request, project_id: int, endpoint: object) -> str | None:
    """A plugin endpoint: authenticate, turn the body into one item of its type, check it, accept it.

    The key comes from ``X-Sentry-Auth``/``Authorization: DSN`` or ``?sentry_key=``. Returns the
    record's id (if it has one). Raises AuthMissing/AuthForbidden, BadRequest (400, with the
    item type's reason, counted ``invalid``) for a body the plugin refuses, PayloadTooLarge
    past the type's ``max_bytes``, RateLimited/PipelineFull as for envelopes.
    """
    key = key_from_headers(request.headers) or key_from_query(request.query)
    if key is None:
        raise AuthMissing("missing authorization information: send X-Sentry-Auth or ?sentry_key=<public key>")
    key, project_id = await relay.project_of_key(key, project_id)
    items = relay.plugin_items
    item_type = endpoint.item_type
    category = category_of_item(item_type)
    to_item = getattr(endpoint, "to_item", None)
    try:
        payload = to_item(request.body, dict(parse_qsl(request.query))) if to_item is not None else request.body
        if not isinstance(payload, bytes):
            raise InvalidItem(f"{endpoint.name}: to_item() must return bytes", reason="plugin_failed")
        record = items.parse(item_type, project_id, time.time(), payload, {"type": item_type})
    except ValueError as exc:  # InvalidItem is one
        reason = getattr(exc, "reason", f"invalid_{item_type}")
        relay.outcomes.record(project_id, Outcome.INVALID, category, reason)
        if reason == "too_large":
            raise PayloadTooLarge(str(exc)) from exc
        raise BadRequest(f"{item_type}: {exc}", reason=reason) from exc
    envelope = Envelope({}, [Item({"type": item_type}, payload)])
    if relay.settings.any_quotas if relay.settings is not None else relay.quotas:
        envelope, _ = await relay._apply_quotas(envelope, project_id, key)
    await relay.accept(envelope, project_id, key, remote_addr=client_ip(
        request.remote_addr, request.headers.get("x-forwarded-for"), relay.trusted_proxies))
    return record.record_id


def drop_oversized(relay: "Relay", envelope: Envelope, project_id: int) -> Envelope:
    """Drop plugin items over their type's ``max_bytes`` (outcome invalid/too_large).

    Raises PayloadTooLarge (413) if nothing but client reports is left.
    """
    types = relay.plugin_items.types
    kept = []
    for item in envelope.items:
        kind = types.get(item.type)
        if kind is not None and len(item.payload) > kind.max_bytes:
            relay.outcomes.record(project_id, Outcome.INVALID, category_of_item(item.type), "too_large")
        else:
            kept.append(item)
    if len(kept) == len(envelope.items):
        return envelope
    if not any(item.type != "client_report" for item in kept):
        exc = PayloadTooLarge("every item exceeds its type's size limit")
        exc.counted = True  # counted above, per item and category
        raise exc
    return Envelope(envelope.headers, kept)
