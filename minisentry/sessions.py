"""Release health: session updates and session aggregates counted per project, release, environment
and minute, as Sentry's release health does.

SDKs send either single ``session`` items (one update of one user session: ``init`` on its first
update, a final ``status`` of ``exited``, ``crashed``, ``abnormal`` or ``errored``, an ``errors``
count) or ``sessions`` items (request-mode aggregates: per ``started`` minute, how many sessions
``exited``, ``errored``, ``crashed``, ``abnormal``). Both become the same counters:

- ``started``: sessions begun (an update with ``init: true``; every session of an aggregate);
- ``crashed``, ``abnormal``: sessions that ended that way;
- ``errored``: sessions that ended with errors but did not crash (``errored`` status, or an
  ``exited`` update carrying ``errors > 0``), counted once, at their final update;
- ``exited``: sessions that ended normally.

The crash-free rate of a release is ``1 - crashed / started``. Counts wait in a bounded in-memory
table (:class:`SessionAggregator`) until the store stage writes them, like outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["SessionCounts", "SessionAggregator", "SessionError", "parse_session", "parse_sessions"]

_FINAL = {"exited", "crashed", "abnormal", "errored"}
_MAX_TEXT = 200
#: Sessions in one aggregate item beyond this are refused (a bound on the work one item causes).
MAX_AGGREGATE_GROUPS = 1000


class SessionError(ValueError):
    """A session payload that cannot be counted; the message says why (becomes an invalid outcome)."""


@dataclass(frozen=True, slots=True)
class SessionCounts:
    """Counts for one (project, release, environment, minute)."""

    project_id: int
    release: str
    environment: str
    minute: int
    started: int = 0
    exited: int = 0
    errored: int = 0
    crashed: int = 0
    abnormal: int = 0


def _timestamp(value: Any, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise SessionError(f"{what} is not an RFC 3339 timestamp: {value[:40]!r}") from exc
    raise SessionError(f"{what} is missing or not a timestamp")


def _attrs(payload: dict[str, Any]) -> tuple[str, str]:
    attrs = payload.get("attrs")
    if not isinstance(attrs, dict):
        raise SessionError("attrs missing")
    release = attrs.get("release")
    if not isinstance(release, str) or not release.strip():
        raise SessionError("attrs.release missing: release health needs a release")
    environment = attrs.get("environment")
    environment = environment if isinstance(environment, str) and environment else "production"
    return release[:_MAX_TEXT], environment[:_MAX_TEXT]


def _count(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31:
        raise SessionError(f"{key} must be a non-negative integer")
    return value


def parse_session(project_id: int, payload: Any) -> SessionCounts:
    """Count one ``session`` update. Never blocks. Raises SessionError for an unusable payload."""
    if not isinstance(payload, dict):
        raise SessionError("session item is not a JSON object")
    release, environment = _attrs(payload)
    started_at = _timestamp(payload.get("started"), "started")
    status = payload.get("status", "ok")
    if not isinstance(status, str) or status not in _FINAL | {"ok"}:
        raise SessionError(f"unknown session status {str(status)[:40]!r}")
    errors = _count(payload, "errors")
    final = status in _FINAL
    return SessionCounts(
        project_id, release, environment, int(started_at // 60 * 60),
        started=1 if payload.get("init") is True else 0,
        exited=1 if status == "exited" and errors == 0 else 0,
        errored=1 if final and (status == "errored" or (status == "exited" and errors > 0)) else 0,
        crashed=1 if status == "crashed" else 0,
        abnormal=1 if status == "abnormal" else 0,
    )


def parse_sessions(project_id: int, payload: Any) -> list[SessionCounts]:
    """Count a ``sessions`` aggregate item. Never blocks. Raises SessionError for an unusable payload."""
    if not isinstance(payload, dict):
        raise SessionError("sessions item is not a JSON object")
    release, environment = _attrs(payload)
    groups = payload.get("aggregates")
    if not isinstance(groups, list):
        raise SessionError("aggregates missing")
    if len(groups) > MAX_AGGREGATE_GROUPS:
        raise SessionError(f"more than {MAX_AGGREGATE_GROUPS} aggregate groups")
    result = []
    for group in groups:
        if not isinstance(group, dict):
            raise SessionError("aggregate group is not an object")
        minute = int(_timestamp(group.get("started"), "aggregates[].started") // 60 * 60)
        exited, errored = _count(group, "exited"), _count(group, "errored")
        crashed, abnormal = _count(group, "crashed"), _count(group, "abnormal")
        result.append(SessionCounts(project_id, release, environment, minute,
                                    started=exited + errored + crashed + abnormal,
                                    exited=exited, errored=errored, crashed=crashed, abnormal=abnormal))
    return result


class SessionAggregator:
    """Sums SessionCounts per (project, release, environment, minute) until the store takes them.

    Bounded: at most ``max_keys`` distinct keys are held; counts for new keys past that are added
    to ``dropped`` (and the caller records them as outcomes) instead of growing memory.
    """

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self.dropped = 0
        self._counts: dict[tuple[int, str, str, int], list[int]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, counts: SessionCounts) -> bool:
        """Add counts; False (and nothing added) when the table is full. Never blocks."""
        key = (counts.project_id, counts.release, counts.environment, counts.minute)
        row = self._counts.get(key)
        if row is None:
            if len(self._counts) >= self.max_keys:
                self.dropped += 1
                return False
            row = self._counts[key] = [0, 0, 0, 0, 0]
        row[0] += counts.started
        row[1] += counts.exited
        row[2] += counts.errored
        row[3] += counts.crashed
        row[4] += counts.abnormal
        return True

    def take(self) -> list[SessionCounts]:
        """Remove and return everything counted so far."""
        counts, self._counts = self._counts, {}
        return [SessionCounts(p, r, e, m, *row) for (p, r, e, m), row in counts.items()]
