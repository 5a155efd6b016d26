"""Issue statuses as in Sentry: unresolved, resolved (now or in the next release), ignored (muted).

Pure functions, used by the store (what a new event does to its issue), the web API and the web UI
(validating a requested change and turning it into what is stored). Nothing here blocks; the
parsers raise BadRequest (400) naming the offending field.

What is stored per issue: ``status`` (one of :data:`STATUSES`) and ``status_details``, a JSON
object whose keys depend on the status:

- ``resolved``: ``{}``, or ``{"inNextRelease": true, "resolvedRelease": <release or null>}``
- ``ignored``: ``{}`` (forever), and/or ``{"ignoreCount": n, "ignoreCountBase": <count when
  ignored>}``, and/or ``{"ignoreUntil": <unix seconds>}``
- ``unresolved``: ``{}``

What a new event does (:func:`on_event`):

- unresolved: nothing.
- resolved: the issue is unresolved again (activity ``regression``). Resolved *in next release*:
  only an event whose ``release`` differs from the release of the issue's latest event at the time
  it was resolved reopens it (an event without a release differs from any release); an event of
  that same release leaves it resolved. "Differs", not "is newer": minisentry does not order
  releases.
- ignored: stays ignored until a condition expires, checked when an event arrives: the ``n`` events
  after ignoring stay ignored and the one after them unignores it; an event received at or after
  ``ignoreUntil`` unignores it. It becomes unresolved with activity ``unignored``. Nothing expires
  without an event: an ignored issue whose date has passed shows as ignored until its next event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from .errors import BadRequest

__all__ = ["STATUSES", "REQUEST_STATUSES", "StatusChange", "EventStep", "parse_change", "form_change",
           "stored_status", "on_event", "details_to_api", "describe", "load_details"]

#: What an issue's ``status`` column holds.
STATUSES = ("unresolved", "resolved", "ignored")
#: What a client may ask for (Sentry's ``status`` values of ``PUT /api/0/issues/<id>/``).
REQUEST_STATUSES = ("resolved", "unresolved", "ignored", "resolvedInNextRelease")
_DETAIL_KEYS = ("inNextRelease", "ignoreCount", "ignoreUntil", "ignoreDuration")
#: Sentry accepts these too; we say so plainly instead of ignoring them.
_UNSUPPORTED_DETAILS = ("inRelease", "inCommit", "ignoreWindow", "ignoreUserCount", "ignoreUserWindow")
_BODY_KEYS = ("status", "statusDetails", "substatus")
_MAX_COUNT = 10**12
_MAX_MINUTES = 100 * 366 * 24 * 60


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A validated request to change issues' status (before the issue's own state is known)."""

    status: str
    in_next_release: bool = False
    ignore_count: int | None = None
    #: Unix seconds.
    ignore_until: float | None = None


@dataclass(frozen=True, slots=True)
class EventStep:
    """What a new event does to its issue: the status and details to store, the activity to log (or None)."""

    status: str
    details: str
    activity: str | None


def _positive_int(details: dict[str, Any], key: str, limit: int) -> int | None:
    value = details.get(key)
    if value is None:
        return None
    # bool is an int in Python, but ``true`` is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise BadRequest(f"statusDetails.{key} must be a whole number from 1 to {limit}")
    return value


def _timestamp(text: Any, what: str) -> float:
    if not isinstance(text, str) or len(text) > 64:
        raise BadRequest(f"{what} must be an ISO 8601 date and time, e.g. 2030-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadRequest(f"{what} must be an ISO 8601 date and time, e.g. 2030-01-31T12:00:00Z") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # a naive time is taken as UTC, as Sentry does
    try:
        return moment.timestamp()
    except (OverflowError, ValueError) as exc:
        raise BadRequest(f"{what} is out of range") from exc


def parse_change(body: Any, *, now: float) -> StatusChange:
    """Validate a PUT body ``{"status": ..., "statusDetails": {...}}``; ``now`` is unix seconds.

    ``resolvedInNextRelease`` and ``resolved`` with ``inNextRelease: true`` mean the same;
    ``ignoreDuration`` (minutes) becomes an ``ignoreUntil`` of ``now`` plus it. Raises BadRequest
    for anything else: a missing or unknown status, unknown or unsupported keys, wrong types, or
    details that do not fit the status.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for key in body:
        if key not in _BODY_KEYS:
            raise BadRequest(f"{str(key)[:40]!r} cannot be changed here (only status and statusDetails)")
    status = body.get("status")
    if not isinstance(status, str) or status not in REQUEST_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(REQUEST_STATUSES)}")
    if body.get("substatus") is not None and not isinstance(body["substatus"], str):
        raise BadRequest("substatus must be a string")
    details = body.get("statusDetails")
    if details is None:
        details = {}
    if not isinstance(details, dict):
        raise BadRequest("statusDetails must be an object")
    for key in details:
        if key in _UNSUPPORTED_DETAILS:
            raise BadRequest(f"statusDetails.{key} is not supported by minisentry")
        if key not in _DETAIL_KEYS:
            raise BadRequest(f"unknown statusDetails key {str(key)[:40]!r}")
    in_next = details.get("inNextRelease", False)
    if not isinstance(in_next, bool):
        raise BadRequest("statusDetails.inNextRelease must be true or false")
    count = _positive_int(details, "ignoreCount", _MAX_COUNT)
    minutes = _positive_int(details, "ignoreDuration", _MAX_MINUTES)
    until = _timestamp(details["ignoreUntil"], "statusDetails.ignoreUntil") if "ignoreUntil" in details else None
    if until is not None and minutes is not None:
        raise BadRequest("give statusDetails.ignoreUntil or ignoreDuration, not both")
    if minutes is not None:
        until = now + minutes * 60
    ignoring = count is not None or until is not None
    if status == "resolvedInNextRelease":
        status, in_next = "resolved", True
    if ignoring and status != "ignored":
        raise BadRequest("ignoreCount, ignoreUntil and ignoreDuration need status ignored")
    if in_next and status != "resolved":
        raise BadRequest("inNextRelease needs status resolved")
    return StatusChange(status, in_next_release=in_next, ignore_count=count, ignore_until=until)


def form_change(form: dict[str, str], *, now: float) -> StatusChange:
    """Validate the web UI's status form: ``status`` and, for ``ignored``, ``ignore`` = ``forever``,
    ``count`` (with ``count``) or ``until`` (with ``until``, a date and time in UTC). Raises BadRequest."""
    status = form.get("status", "")
    details: dict[str, Any] = {}
    if status == "ignored":
        how = form.get("ignore", "forever")
        if how == "count":
            try:
                details["ignoreCount"] = int(form.get("count", "").strip())
            except ValueError as exc:
                raise BadRequest("the number of events must be a whole number") from exc
        elif how == "until":
            details["ignoreUntil"] = form.get("until", "")
        elif how != "forever":
            raise BadRequest("ignore must be forever, count or until")
    return parse_change({"status": status, "statusDetails": details}, now=now)


def stored_status(change: StatusChange, *, count: int, latest_release: str | None) -> tuple[str, dict[str, Any]]:
    """The ``(status, details)`` to store for ``change`` on an issue with ``count`` events whose
    latest event has ``latest_release``. Raises BadRequest for *next release* when that event has
    no release (there is nothing to tell the next one by, as in Sentry)."""
    if change.status == "resolved" and change.in_next_release:
        if latest_release is None:
            raise BadRequest("the issue's latest event has no release to tell the next release by")
        return "resolved", {"inNextRelease": True, "resolvedRelease": latest_release}
    if change.status == "ignored":
        details: dict[str, Any] = {}
        if change.ignore_count is not None:
            details.update(ignoreCount=change.ignore_count, ignoreCountBase=count)
        if change.ignore_until is not None:
            details["ignoreUntil"] = change.ignore_until
        return "ignored", details
    return change.status, {}


def load_details(raw: str | bytes | None) -> dict[str, Any]:
    """Decode a stored ``status_details`` (None, or unreadable, is ``{}``)."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _expired(details: dict[str, Any], count_before: int, now: float) -> bool:
    until = details.get("ignoreUntil")
    if isinstance(until, (int, float)) and now >= until:
        return True
    limit, base = details.get("ignoreCount"), details.get("ignoreCountBase", 0)
    return isinstance(limit, int) and isinstance(base, int) and count_before - base >= limit


def on_event(before: Any, *, release: Any, now: float) -> EventStep:
    """What a new event does to its issue. ``before`` is the issue's stored ``(status,
    status_details, count)`` (None for a new issue); ``release`` is the event's; ``now`` is when it
    was received (unix seconds). See the module docstring for the rules."""
    if before is None:
        return EventStep("unresolved", "{}", "new")
    status, raw, count_before = before[0], before[1], before[2]
    details = load_details(raw)
    if status == "resolved":
        if details.get("inNextRelease") and release == details.get("resolvedRelease"):
            return EventStep(status, raw or "{}", None)
        return EventStep("unresolved", "{}", "regression")
    if status == "ignored":
        if _expired(details, int(count_before or 0), now):
            return EventStep("unresolved", "{}", "unignored")
        return EventStep(status, raw or "{}", None)
    return EventStep(status, raw or "{}", None)


def iso(timestamp: float | None) -> str | None:
    """Unix seconds as Sentry's ISO 8601 UTC (``2024-01-31T12:00:00.000000Z``); None stays None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def details_to_api(status: str, details: dict[str, Any]) -> dict[str, Any]:
    """Sentry's ``statusDetails`` of an issue: ``inNextRelease``, ``ignoreCount``, ``ignoreUntil``."""
    if status == "resolved" and details.get("inNextRelease"):
        return {"inNextRelease": True, "actor": None}
    if status != "ignored":
        return {}
    result: dict[str, Any] = {}
    if isinstance(details.get("ignoreCount"), int):
        result["ignoreCount"] = details["ignoreCount"]
    if isinstance(details.get("ignoreUntil"), (int, float)):
        result["ignoreUntil"] = iso(details["ignoreUntil"])
    if result:
        result["actor"] = None
    return result


def describe(status: str, details: dict[str, Any], count: int) -> str:
    """A short sentence for the UI, e.g. "ignored until 12 more events" or "resolved in the next release"."""
    if status == "resolved" and details.get("inNextRelease"):
        return f"resolved in the next release (after {details.get('resolvedRelease')})"
    if status != "ignored":
        return status
    parts = []
    if isinstance(details.get("ignoreCount"), int):
        left = max(details["ignoreCount"] - (count - int(details.get("ignoreCountBase", 0))), 0)
        parts.append(f"{left} more event{'s' if left != 1 else ''}")
    if isinstance(details.get("ignoreUntil"), (int, float)):
        parts.append(datetime.fromtimestamp(details["ignoreUntil"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return f"ignored until {' or '.join(parts)}" if parts else "ignored forever"
