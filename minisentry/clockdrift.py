"""Clock drift correction: events from a device whose clock is wrong get server-relative timestamps.

The envelope header ``sent_at`` is the SDK's clock at sending; the relay notes its own clock when the
envelope arrives. When they differ by at least :data:`MINIMUM_DRIFT` (Relay's threshold: smaller
differences are network and queueing delays, not a wrong clock), every timestamp in the event is
shifted by the difference and the event gets a ``clock_drift`` entry in ``errors``, as Relay does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["MINIMUM_DRIFT", "drift_of", "correct_drift"]

#: Seconds of difference below which a clock is considered right (Relay uses 55 minutes).
MINIMUM_DRIFT = 55 * 60


def drift_of(sent_at: Any, received: float) -> float | None:
    """Return received − sent_at in seconds when it is a real drift, else None. Never raises."""
    if not isinstance(sent_at, str):
        return None
    try:
        sent = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if sent.tzinfo is None:
        return None
    drift = received - sent.timestamp()
    return drift if abs(drift) >= MINIMUM_DRIFT else None


def _shift(value: Any, drift: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if moment.tzinfo is None:
            return value
        return moment.timestamp() + drift
    return value + drift


def correct_drift(event: dict[str, Any], drift: float, sent_at: str, received: float) -> dict[str, Any]:
    """Shift the event's timestamps by ``drift`` seconds in place and note it in ``errors``."""
    for key in ("timestamp", "start_timestamp"):
        if key in event:
            event[key] = _shift(event[key], drift)
    breadcrumbs = event.get("breadcrumbs")
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in crumbs if isinstance(crumbs, list) else ():
        if isinstance(crumb, dict) and "timestamp" in crumb:
            crumb["timestamp"] = _shift(crumb["timestamp"], drift)
    for span in event.get("spans") or () if isinstance(event.get("spans"), list) else ():
        if isinstance(span, dict):
            for key in ("timestamp", "start_timestamp"):
                if key in span:
                    span[key] = _shift(span[key], drift)
    errors = event.get("errors")
    if not isinstance(errors, list):
        errors = event["errors"] = []
    errors.append({"type": "clock_drift", "sdk_time": sent_at,
                   "server_time": datetime.fromtimestamp(received, timezone.utc).isoformat()})
    return event
