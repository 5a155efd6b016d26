"""Time windows of the web UI's charts (``?period=24h|7d|30d``) and the parsing of their query strings.

A :class:`Period` is a window ending now, cut into fixed buckets aligned to UTC (hours or days), so
a chart always has the same number of bars and a bar's time is the same on every reload. Parsing is
lenient on purpose: whatever a URL carries, an unknown period falls back to the page's default and
a malformed number to its default, so a hand-edited link never produces an error page. Pure
functions; nothing blocks or raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl

__all__ = ["Period", "PERIODS", "parse_period", "parse_query", "bucket_starts", "bucket_label", "bucket_title"]


@dataclass(frozen=True, slots=True)
class Period:
    """A chart window: its name in URLs, length and bucket size in seconds, and how bars are labelled."""

    name: str
    seconds: int
    interval: int
    label_format: str

    @property
    def buckets(self) -> int:
        """How many bars a chart over this period has."""
        return self.seconds // self.interval


PERIODS = {
    "24h": Period("24h", 24 * 3600, 3600, "%H:%M"),
    "7d": Period("7d", 7 * 86400, 6 * 3600, "%m-%d %H:%M"),
    "30d": Period("30d", 30 * 86400, 86400, "%m-%d"),
}

# A query string longer than this is cut before parsing: no page needs more.
_MAX_QUERY = 4096
_MAX_FIELDS = 20


def parse_query(query: str) -> dict[str, str]:
    """``{name: value}`` of a URL query (the first value of a repeated name), bounded in size and fields."""
    result: dict[str, str] = {}
    try:
        pairs = parse_qsl(query[:_MAX_QUERY], keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:  # more fields than allowed: a crafted URL, treat as no parameters
        return result
    for name, value in pairs:
        result.setdefault(name, value)
    return result


def parse_period(raw: str | None, allowed: tuple[str, ...], default: str) -> Period:
    """The :class:`Period` named ``raw`` if it is one of ``allowed``, else the ``default`` one."""
    return PERIODS[raw] if raw in allowed and raw in PERIODS else PERIODS[default]


def bucket_starts(period: Period, now: float) -> list[int]:
    """The start times (Unix seconds) of the period's buckets, oldest first; the last holds ``now``."""
    if not math.isfinite(now):
        now = 0.0
    last = int(now // period.interval) * period.interval
    return [last - period.interval * i for i in range(period.buckets - 1, -1, -1)]


def bucket_label(start: int, period: Period) -> str:
    """A bucket's start as the period's x-axis label (UTC)."""
    return datetime.fromtimestamp(start, timezone.utc).strftime(period.label_format)


def bucket_title(start: int, period: Period) -> str:
    """A bucket's time span for a tooltip, e.g. ``2024-05-01 13:00–14:00 UTC``."""
    begin = datetime.fromtimestamp(start, timezone.utc)
    end = datetime.fromtimestamp(start + period.interval, timezone.utc)
    if period.interval >= 86400:
        return f"{begin:%Y-%m-%d} UTC"
    return f"{begin:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"
