"""Rate limits the upstream announced, remembered at the edge until they expire.

When the upstream answers a forwarded envelope with ``X-Sentry-Rate-Limits`` (on a 429, or on a 200
that announces fully blocked categories), the edge relay keeps those limits here and refuses the
limited categories itself, without contacting the upstream, until each limit's ``retry_after`` has
passed. Limits are kept per scope: ``key`` limits for that public key, ``organization`` limits for
every project (a minisentry install is one organization), anything else for the project.

Bounds: at most ``max_scopes`` scopes and :data:`MAX_LIMITS_PER_SCOPE` limits per scope; past that,
new limits are not remembered. That only costs a round trip: the upstream keeps enforcing them.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from .envelope import Item
from .outcomes import category_of_item
from .quotas import RateLimitResult
from .ratelimits import RateLimit, merge_rate_limit, parse_rate_limits

__all__ = ["UpstreamLimits", "MAX_LIMITS_PER_SCOPE"]

MAX_LIMITS_PER_SCOPE = 32
# Longer limits are capped: an upstream asking for more than an hour of silence is more likely
# broken than right, and the upstream still enforces its own quotas after the cap.
_MAX_RETRY_AFTER = 3600


class UpstreamLimits:
    """Active upstream rate limits by scope. Never blocks; not thread-safe (one event loop uses it).

    ``clock`` returns unix seconds. Raises ValueError if ``max_scopes`` is not positive.
    """

    def __init__(self, *, max_scopes: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        if max_scopes <= 0:
            raise ValueError(f"max_scopes must be positive, got {max_scopes!r}")
        self.max_scopes = max_scopes
        self.clock = clock
        #: How many limits were not remembered because a bound was reached.
        self.skipped = 0
        self._scopes: dict[tuple, list[tuple[float, RateLimit]]] = {}

    def __len__(self) -> int:
        return len(self._scopes)

    @staticmethod
    def _scope_key(limit: RateLimit, project_id: int, public_key: str) -> tuple:
        if limit.scope == "organization":
            return ("organization",)
        if limit.scope == "key" and public_key:
            return ("key", public_key)
        return ("project", project_id)

    def add_header(self, project_id: int, public_key: str, header: str | None) -> list[RateLimit]:
        """Remember the limits of one ``X-Sentry-Rate-Limits`` value; return them. Raises nothing."""
        limits = parse_rate_limits(header) if header else []
        self.add(project_id, public_key, limits)
        return limits

    def add(self, project_id: int, public_key: str, limits: Iterable[RateLimit]) -> None:
        """Remember ``limits`` from now until each one's ``retry_after`` has passed. Raises nothing."""
        now = self.clock()
        for limit in limits:
            if limit.retry_after <= 0:
                continue
            key = self._scope_key(limit, project_id, public_key)
            entries = self._scopes.get(key)
            if entries is None:
                if len(self._scopes) >= self.max_scopes:
                    self._expire(now)
                if len(self._scopes) >= self.max_scopes:
                    self.skipped += 1
                    continue
                entries = self._scopes[key] = []
            entries[:] = [(until, held) for until, held in entries if until > now]
            until = now + min(limit.retry_after, _MAX_RETRY_AFTER)
            for index, (held_until, held) in enumerate(entries):
                if set(held.categories) == set(limit.categories) and held.reason_code == limit.reason_code:
                    entries[index] = (max(until, held_until), limit)
                    break
            else:
                if len(entries) >= MAX_LIMITS_PER_SCOPE:
                    self.skipped += 1
                    continue
                entries.append((until, limit))

    def _expire(self, now: float) -> None:
        for key in [key for key, entries in self._scopes.items() if all(until <= now for until, _ in entries)]:
            del self._scopes[key]

    def active(self, project_id: int, public_key: str) -> list[RateLimit]:
        """Return the limits in force for this project and key, ``retry_after`` counting down. Raises nothing."""
        now = self.clock()
        limits: list[RateLimit] = []
        for key in (("organization",), ("project", project_id), ("key", public_key)):
            for until, limit in self._scopes.get(key, ()):
                remaining = until - now
                if remaining > 0:
                    merge_rate_limit(limits, RateLimit(max(1, int(-(-remaining // 1))), limit.categories,
                                                       limit.scope, limit.reason_code, limit.namespaces))
        return limits

    def check(self, project_id: int, public_key: str, items: Iterable[Item]) -> RateLimitResult | None:
        """Return which of the items' categories are limited (as a RateLimitResult), or None. Raises nothing.

        Client reports are never limited, as for local quotas.
        """
        if not self._scopes:
            return None
        active = self.active(project_id, public_key)
        if not active:
            return None
        rejected: dict[str, RateLimit] = {}
        announced: list[RateLimit] = []
        for item in items:
            if item.type == "client_report":
                continue
            category = category_of_item(item.type)
            for limit in active:
                if not limit.categories or category in limit.categories:
                    current = rejected.get(category)
                    if current is None or limit.retry_after > current.retry_after:
                        rejected[category] = limit
                    merge_rate_limit(announced, limit)
        if not rejected:
            return None
        return RateLimitResult({}, rejected, tuple(announced))
