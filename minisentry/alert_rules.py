"""Which rules an alert matches, and each rule's rate limit.

A rule matches an alert when the alert's kind is in its ``on``, its project is in ``projects`` (or
``projects`` is empty) and, for issues, its level is at least ``min_level`` (monitor failures have
no level and pass). A matching rule whose limit is used up suppresses the alert: it is counted and
logged, and the next alert the rule does send carries ``suppressed = N`` (shown in every payload).
Pure in-memory state, bounded by ``max_per_hour`` timestamps per rule; a restart starts afresh.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable

from .alert_model import Alert
from .config_alerts import LEVELS, AlertRule

__all__ = ["RateLimiter", "RuleSet", "rule_matches"]

log = logging.getLogger("minisentry.alerts")

#: The rate-limit window, in seconds.
HOUR = 3600.0


class RateLimiter:
    """At most ``limit`` alerts in any sliding ``window`` seconds. Never blocks.

    Holds at most ``limit`` timestamps (the sends inside the window), so its memory is bounded by
    the configuration, whatever the alert rate.
    """

    def __init__(self, limit: int, *, window: float = HOUR, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sent: deque[float] = deque(maxlen=limit)
        #: Alerts refused since the last one allowed.
        self.pending_suppressed = 0

    def take(self) -> int | None:
        """Use one send: return how many were suppressed since the previous one (then 0), or None if over the limit."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if len(self._sent) >= self.limit:
            self.pending_suppressed += 1
            return None
        self._sent.append(now)
        suppressed, self.pending_suppressed = self.pending_suppressed, 0
        return suppressed


def rule_matches(rule: AlertRule, alert: Alert) -> bool:
    """Whether ``rule`` wants ``alert`` (kind, project, level). Never raises."""
    if alert.kind not in rule.on:
        return False
    if rule.projects and alert.project not in rule.projects:
        return False
    if rule.min_level and alert.level is not None:
        # An unknown level (a custom one from an SDK) counts as "error": better one alert too many.
        level = alert.level if alert.level in LEVELS else "error"
        return LEVELS.index(level) >= LEVELS.index(rule.min_level)
    return True


class RuleSet:
    """The configured rules with their rate limiters; ``route`` turns one alert into deliveries."""

    def __init__(self, rules: tuple[AlertRule, ...] | list[AlertRule], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rules = list(rules)
        self.limiters = {rule.name: RateLimiter(rule.max_per_hour, clock=clock) for rule in self.rules}
        #: Alerts dropped by a rule's rate limit, over the process's life.
        self.suppressed = 0

    def route(self, alert: Alert) -> list[tuple[Alert, dict[str, Any]]]:
        """``(alert for the rule, target)`` for every target of every matching rule within its limit. Never blocks."""
        deliveries = []
        for rule in self.rules:
            if not rule_matches(rule, alert):
                continue
            suppressed = self.limiters[rule.name].take()
            if suppressed is None:
                self.suppressed += 1
                log.warning("alert rule %r: over its limit of %d per hour, suppressed %s (%s in %s)", rule.name,
                            rule.max_per_hour, alert.id, alert.kind, alert.project)
                continue
            routed = alert.for_rule(rule.name, suppressed)
            deliveries += [(routed, target) for target in rule.targets]
        return deliveries
