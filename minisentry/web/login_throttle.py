"""Sign-in rate limiting: failed attempts per account and per client address, in a sliding window.

Guessing passwords must cost an attacker time: after ``attempts`` failures for one email within
``window`` seconds, or ``address_attempts`` failures from one client address (across emails), the
sign-in form answers 429 with ``Retry-After`` until the oldest failure leaves the window, without
checking the password at all (so a right guess while locked reveals nothing). A successful sign-in
clears its account's failures.

Memory is bounded: at most ``max_tracked`` accounts and addresses are remembered (least recently
failed ones are forgotten first), each with at most its limit of timestamps. The counts live in
this process: behind several UI-serving processes each counts on its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

__all__ = ["LoginThrottle"]


class _Window:
    """Failure times per key, at most ``limit`` each, at most ``max_keys`` keys (LRU)."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        times = self.failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return 0.0
        return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def add(self, key: str, now: float) -> None:
        times = self.failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
            while len(self.failures) >= self.max_keys:
                self.failures.popitem(last=False)
        times.append(now)
        self.failures[key] = times

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginThrottle:
    """Decides whether a sign-in attempt may be checked. Never blocks, never raises."""

    def __init__(self, *, attempts: int, address_attempts: int, window: float, max_tracked: int) -> None:
        self.accounts = _Window(attempts, window, max_tracked)
        self.addresses = _Window(address_attempts, window, max_tracked)
        #: Attempts refused without a password check since start (for tests and logs).
        self.refused = 0

    def retry_after(self, email: str, address: str | None, now: float | None = None) -> float:
        """Seconds until this attempt may be checked; 0 when it may be checked now."""
        now = time.monotonic() if now is None else now
        wait = max(self.accounts.wait(email, now), self.addresses.wait(address, now) if address else 0.0)
        if wait > 0:
            self.refused += 1
        return wait

    def failed(self, email: str, address: str | None, now: float | None = None) -> None:
        """Count a failed attempt against the account and the address."""
        now = time.monotonic() if now is None else now
        self.accounts.add(email, now)
        if address:
            self.addresses.add(address, now)

    def succeeded(self, email: str) -> None:
        """Forget the account's failures (its address keeps its count: one account is not all)."""
        self.accounts.clear(email)
