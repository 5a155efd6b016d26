"""Outcomes: what happened to each item. Every item ends with exactly one.

The numbering of :class:`Outcome` matches Sentry's so that outcome rows read the same. Outcomes are
counted in memory per (minute, project, outcome, reason, category) by :class:`OutcomeAggregator`
and written to the store in batches by the store stage.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

__all__ = ["Outcome", "OutcomeRow", "OutcomeAggregator", "category_of_item", "register_item_category"]


class Outcome(enum.IntEnum):
    """The fate of an item, numbered as in Sentry."""

    #: Stored (or, for sessions and reports, counted).
    ACCEPTED = 0
    #: Dropped by an inbound filter or a kill-switch; the reason names which.
    FILTERED = 1
    #: Dropped because a quota or rate limit was exceeded, or the pipeline was full.
    RATE_LIMITED = 2
    #: Dropped because it was malformed, too large or failed normalization; the reason says how.
    INVALID = 3
    #: Dropped as abuse.
    ABUSE = 4
    #: The SDK reported that it dropped the item itself (client reports).
    CLIENT_DISCARD = 5


# Sentry's data categories for the item types an envelope carries.
_ITEM_CATEGORIES = {
    "event": "error",
    "transaction": "transaction",
    "security": "security",
    "attachment": "attachment",
    "session": "session",
    "sessions": "session",
    "profile": "profile",
    "profile_chunk": "profile_chunk",
    "replay_event": "replay",
    "replay_recording": "replay",
    "replay_video": "replay",
    "check_in": "monitor",
    "span": "span",
    "log": "log_item",
    "feedback": "feedback",
    "user_report": "user_report_v2",
    "statsd": "metric_bucket",
    "metric_buckets": "metric_bucket",
}
#: Item types minisentry (or Sentry) defines itself: a plugin may not take them over.
_BUILTIN_ITEM_TYPES = frozenset(_ITEM_CATEGORIES) | {"client_report", "otel_log"}


def register_item_category(item_type: str, category: str) -> None:
    """Give a plugin's item type its data category (for quotas and outcomes). Does not block.

    Process-wide, unlike the plugin manager: every module asks ``category_of_item`` without a
    pipeline at hand, and a type's category is part of the wire protocol, so one meaning per process
    is right. Raises PluginError if the type is built in or already has another category.
    """
    from .errors import PluginError

    known = _ITEM_CATEGORIES.get(item_type)
    if item_type in _BUILTIN_ITEM_TYPES or (known is not None and known != category):
        raise PluginError(f"item type {item_type!r} is already defined (category {known or 'built in'!r})")
    _ITEM_CATEGORIES[item_type] = category


def category_of_item(item_type: str) -> str:
    """Return Sentry's data category for an envelope item type (``default`` when unknown)."""
    return _ITEM_CATEGORIES.get(item_type, "default")


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One aggregated outcome count: ``timestamp`` is the start of its minute (unix seconds)."""

    timestamp: int
    project_id: int
    outcome: Outcome
    reason: str
    category: str
    quantity: int


class OutcomeAggregator:
    """Counts outcomes per minute in a bounded table until the store takes them. Never blocks.

    At most ``max_keys`` distinct (minute, project, outcome, reason, category) keys are held; past
    that, records for *new* keys are counted in ``dropped`` instead (existing keys still count), so
    a flood of distinct reasons cannot grow memory. The store drains the table every flush.
    """

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self.dropped = 0
        self._counts: dict[tuple[int, int, int, str, str], int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def record(
        self,
        project_id: int,
        outcome: Outcome,
        category: str,
        reason: str = "",
        quantity: int = 1,
        timestamp: float | None = None,
    ) -> None:
        """Count ``quantity`` items of ``category`` with this outcome and reason."""
        minute = int((time.time() if timestamp is None else timestamp) // 60 * 60)
        key = (minute, project_id, int(outcome), reason, category)
        counts = self._counts
        if key in counts:
            counts[key] += quantity
        elif len(counts) < self.max_keys:
            counts[key] = quantity
        else:
            self.dropped += quantity

    def take(self) -> list[OutcomeRow]:
        """Remove and return everything counted so far."""
        counts, self._counts = self._counts, {}
        return [
            OutcomeRow(minute, project, Outcome(outcome), reason, category, quantity)
            for (minute, project, outcome, reason, category), quantity in counts.items()
        ]

    def restore(self, rows: list[OutcomeRow]) -> None:
        """Put rows back (after a failed write) so they are written on the next flush."""
        for row in rows:
            self.record(row.project_id, row.outcome, row.category, row.reason, row.quantity, row.timestamp)
