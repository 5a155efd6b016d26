"""LoginThrottle on its own: the sliding window, per-address counting and the memory bound."""

from __future__ import annotations

from minisentry.web.login_throttle import LoginThrottle


def throttle(**overrides) -> LoginThrottle:
    settings = {"attempts": 3, "address_attempts": 5, "window": 100.0, "max_tracked": 1000, **overrides}
    return LoginThrottle(**settings)


def test_the_window_slides_past_the_oldest_failure():
    limits = throttle()
    for now in (0.0, 10.0, 20.0):
        assert limits.retry_after("a@x", "10.0.0.1", now) == 0
        limits.failed("a@x", "10.0.0.1", now)
    assert limits.retry_after("a@x", "10.0.0.1", 50.0) == 50.0  # until the failure at 0 is 100 s old
    assert limits.retry_after("a@x", "10.0.0.1", 100.0) == 0     # it left the window: one attempt more
    limits.failed("a@x", "10.0.0.1", 100.0)
    assert limits.retry_after("a@x", "10.0.0.1", 105.0) == 5.0   # the failure at 10 is next to leave
    assert limits.refused == 2


def test_an_address_is_limited_across_accounts_and_a_success_clears_only_the_account():
    limits = throttle()
    for n in range(5):
        limits.failed(f"user{n}@x", "10.0.0.1", 1.0)
    assert limits.retry_after("fresh@x", "10.0.0.1", 2.0) > 0
    assert limits.retry_after("fresh@x", "10.0.0.2", 2.0) == 0
    limits.failed("a@x", "10.0.0.3", 1.0)
    limits.failed("a@x", "10.0.0.3", 1.0)
    limits.failed("a@x", "10.0.0.3", 1.0)
    assert limits.retry_after("a@x", "10.0.0.9", 2.0) > 0
    limits.succeeded("a@x")
    assert limits.retry_after("a@x", "10.0.0.9", 2.0) == 0


def test_at_the_memory_limit_the_least_recently_failed_are_forgotten():
    limits = throttle(max_tracked=2, attempts=1)
    limits.failed("a@x", None, 1.0)
    limits.failed("b@x", None, 2.0)
    limits.failed("c@x", None, 3.0)  # the third key: a@x, failed longest ago, is forgotten
    assert len(limits.accounts.failures) == 2
    assert limits.retry_after("a@x", None, 4.0) == 0
    assert limits.retry_after("b@x", None, 4.0) > 0 and limits.retry_after("c@x", None, 4.0) > 0
