"""Outcome statistics over time, in the shape of Sentry's ``stats_v2`` API.

``GET /api/0/organizations/<org>/stats_v2/?field=sum(quantity)&groupBy=outcome&groupBy=category
&interval=1h&statsPeriod=24h[&project=<id>]`` and ``minisentry stats`` both use :func:`stats_v2`.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from .errors import BadRequest

__all__ = ["stats_v2", "parse_duration", "GROUPS"]

GROUPS = ("outcome", "category", "reason", "project")
_DURATION_RE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: A request may ask for at most this many buckets (a bound on the work and the answer's size).
MAX_BUCKETS = 10_000


def parse_duration(text: str, what: str) -> int:
    """Parse ``1h``, ``30m``, ``14d`` into seconds. Raises BadRequest naming ``what``."""
    match = _DURATION_RE.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise BadRequest(f"invalid {what} {text!r}: use a number and one of s, m, h, d, w (e.g. 1h)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats_v2(store: Any, *, interval: str = "1h", period: str = "24h", group_by: tuple[str, ...] = ("outcome",),
             project_ids: list[int] | None = None, now: float | None = None) -> dict[str, Any]:
    """Outcome quantities per interval and group. Blocks on the store.

    Raises BadRequest for an unknown group, a bad interval/period, or too many buckets.
    """
    for name in group_by:
        if name not in GROUPS:
            raise BadRequest(f"invalid groupBy {name!r} (one of {', '.join(GROUPS)})")
    step, span = parse_duration(interval, "interval"), parse_duration(period, "statsPeriod")
    if step < 60 or span // step > MAX_BUCKETS:
        raise BadRequest(f"interval must be at least 1m and give at most {MAX_BUCKETS} buckets")
    end = (int(now if now is not None else time.time()) // step + 1) * step
    start = end - (span // step) * step
    buckets = list(range(start, end, step))
    rows = store.outcome_series(project_ids, start, end, step, tuple(group_by))
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in group_by)
        group = groups.setdefault(key, {"by": dict(zip(group_by, key)), "totals": {"sum(quantity)": 0},
                                        "series": {"sum(quantity)": [0] * len(buckets)}})
        group["totals"]["sum(quantity)"] += row["quantity"]
        group["series"]["sum(quantity)"][(row["bucket"] - start) // step] += row["quantity"]
    return {"start": _iso(start), "end": _iso(end), "intervals": [_iso(b) for b in buckets],
            "groups": sorted(groups.values(), key=lambda g: tuple(str(v) for v in g["by"].values()))}
