"""The ``X-Sentry-Rate-Limits`` header: its entries (:class:`RateLimit`), written and read as Relay does.

:func:`format_rate_limits` writes the header value Relay sends; :func:`parse_rate_limits` reads one
as tolerantly as SDKs and Relay do; :func:`merge_rate_limit` keeps one entry per category set and
scope. No I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

__all__ = ["RateLimit", "format_rate_limits", "merge_rate_limit", "parse_rate_limits"]

_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One entry of ``X-Sentry-Rate-Limits``: ``retry_after:categories:scope:reason_code:namespaces``.

    ``categories`` empty means all categories. ``namespaces`` only appear for ``metric_bucket``
    limits (kept for parsing; minisentry never produces them).
    """

    retry_after: int
    categories: tuple[str, ...] = ()
    scope: str = ""
    reason_code: str | None = None
    namespaces: tuple[str, ...] = ()


def format_rate_limits(limits: Iterable[RateLimit]) -> str:
    """Return the ``X-Sentry-Rate-Limits`` value for ``limits``, exactly as Relay writes it.

    Entries are joined with ``", "``; the reason code is left out when there is none (an empty one
    is written only to delimit namespaces). Does not block; raises nothing.
    """
    entries = []
    for limit in limits:
        entry = f"{limit.retry_after}:{';'.join(limit.categories)}:{limit.scope}"
        if limit.reason_code is not None:
            entry += f":{limit.reason_code}"
        elif limit.namespaces:
            entry += ":"
        if limit.namespaces:
            entry += ":" + ";".join(limit.namespaces)
        entries.append(entry)
    return ", ".join(entries)


def parse_rate_limits(header: str) -> list[RateLimit]:
    """Parse an ``X-Sentry-Rate-Limits`` value, tolerantly, as SDKs and Relay do. Never raises.

    Spaces are ignored; entries whose ``retry_after`` is not a number are skipped; fractional
    seconds are rounded up and negative ones become 0 (Relay's rule); empty category names are
    dropped; an empty reason code is ``None``; components past the fifth are ignored.
    """
    limits = []
    for entry in header.split(","):
        parts = [part.strip() for part in entry.split(":")]
        seconds = float(parts[0]) if _NUMBER_RE.fullmatch(parts[0]) is not None else math.nan
        if not math.isfinite(seconds):
            continue  # not a number, or too many digits for a float
        retry_after = max(0, math.ceil(seconds))
        parts += [""] * (5 - len(parts))
        limits.append(RateLimit(
            retry_after=retry_after,
            categories=tuple(name for name in (c.strip() for c in parts[1].split(";")) if name),
            scope=parts[2],
            reason_code=parts[3] or None,
            namespaces=tuple(name for name in (n.strip() for n in parts[4].split(";")) if name),
        ))
    return limits


def merge_rate_limit(limits: list[RateLimit], limit: RateLimit) -> None:
    """Add ``limit`` to ``limits`` in place, as Relay's ``RateLimits::add`` does.

    One entry per (category set, scope): an entry for the same set and scope is replaced only when
    ``limit`` lasts longer. Does not block; raises nothing.
    """
    for index, existing in enumerate(limits):
        if set(existing.categories) == set(limit.categories) and existing.scope == limit.scope:
            if limit.retry_after > existing.retry_after:
                limits[index] = limit
            return
    limits.append(limit)
