"""Cron monitors: check-ins (``check_in`` items and the ``/cron/`` endpoint) and missed check-ins.

A check-in names its monitor by slug and reports ``in_progress``, ``ok`` or ``error``; a later
check-in with the same ``check_in_id`` closes an ``in_progress`` one. ``monitor_config`` (schedule,
``checkin_margin`` and ``max_runtime`` in minutes, ``timezone``) creates or updates the monitor, as
Sentry's upserts do. Check-ins wait in a bounded in-memory queue (:class:`CheckInQueue`) for the
store stage, which writes them in order; the pipeline's monitor clock (``MonitorClock``) marks a
monitor's expected check-in ``missed`` once ``next_expected + checkin_margin`` has passed, and an
``in_progress`` check-in ``timeout`` after ``max_runtime``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from .queues import BoundedQueue
from .schedules import ScheduleError, parse_schedule

__all__ = ["CheckIn", "CheckInError", "CheckInQueue", "parse_check_in", "STATUSES"]

STATUSES = ("in_progress", "ok", "error")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


class CheckInError(ValueError):
    """A check-in that cannot be recorded; the message says why (an invalid outcome)."""


@dataclass(frozen=True, slots=True)
class CheckIn:
    """One validated check-in. ``config`` is the monitor_config to upsert, or None."""

    project_id: int
    check_in_id: str
    monitor_slug: str
    status: str
    received: float
    duration: float | None = None
    environment: str = "production"
    config: dict[str, Any] | None = None


def _minutes(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 40_320:
        raise CheckInError(f"monitor_config.{key} must be minutes (0..40320)")
    return value


def parse_check_in(project_id: int, payload: Any, received: float) -> CheckIn:
    """Validate a ``check_in`` payload. Never blocks. Raises CheckInError saying what is wrong."""
    if not isinstance(payload, dict):
        raise CheckInError("check-in is not a JSON object")
    slug = payload.get("monitor_slug")
    if not isinstance(slug, str) or not _SLUG_RE.match(slug.lower()):
        raise CheckInError("monitor_slug must be a slug (lowercase letters, digits, '-', '_')")
    status = payload.get("status")
    if status not in STATUSES:
        raise CheckInError(f"status must be one of {', '.join(STATUSES)}")
    raw_id = payload.get("check_in_id")
    try:
        check_in_id = uuid.UUID(raw_id).hex if isinstance(raw_id, str) else uuid.uuid4().hex
    except ValueError as exc:
        raise CheckInError("check_in_id is not a UUID") from exc
    duration = payload.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0):
        raise CheckInError("duration must be a non-negative number of seconds")
    environment = payload.get("environment")
    environment = environment[:64] if isinstance(environment, str) and environment else "production"
    config = None
    raw_config = payload.get("monitor_config")
    if raw_config is not None:
        if not isinstance(raw_config, dict):
            raise CheckInError("monitor_config must be an object")
        try:
            schedule = parse_schedule(raw_config.get("schedule"), raw_config.get("timezone") or "UTC")
        except ScheduleError as exc:
            raise CheckInError(f"monitor_config.schedule: {exc}") from exc
        config = {"schedule": raw_config["schedule"], "timezone": schedule.tz,
                  "checkin_margin": _minutes(raw_config, "checkin_margin"),
                  "max_runtime": _minutes(raw_config, "max_runtime")}
    return CheckIn(project_id, check_in_id, slug.lower(), status, received,
                   float(duration) if duration is not None else None, environment, config)


class CheckInQueue(BoundedQueue[CheckIn]):
    """Check-ins waiting for the store stage, in arrival order (bounded, see BoundedQueue)."""
