"""The QuotaCounters contract (quota_counters.py) against the memory counters and the real Redis.

Each backend must give the same answers as MemoryQuotaCounters for the same requests, be atomic
per group under concurrency, and let two rate limiters (two relays) sharing it see one count.
Windows are placed around the real time: Redis expires keys on its own clock (EXPIREAT).
"""

from __future__ import annotations

import logging
import time
import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.errors import BackendError
from minisentry.quota_counters import CounterRequest, FailOpenCounters, MemoryQuotaCounters, QuotaCounters
from minisentry.quotas import Quota, RateLimiter

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param("memory", id="memory"),
                        pytest.param("redis", id="redis", marks=pytest.mark.services)])
def open_counters(request):
    """``open_counters()`` returns a handle to one shared counter backend; call it twice for two
    "relays" (memory: the same instance, since memory is per process; Redis: a second client)."""
    opened: list = []
    if request.param == "memory":
        shared = MemoryQuotaCounters()

        def open_memory():
            return shared

        yield open_memory
        return
    from minisentry.backends.redis_quotas import RedisQuotaCounters

    url, prefix = request.getfixturevalue("redis_prefix")

    def open_redis():
        counters = RedisQuotaCounters(url, prefix=prefix)
        opened.append(counters)
        return counters

    yield open_redis
    for counters in opened:
        counters.close()


def req(key: str, limit: int | None, quantity: int = 1, window: int = 3600) -> CounterRequest:
    now = time.time()
    return CounterRequest(key, limit, quantity, int(now // window + 1) * window)


async def test_follows_the_protocol(open_counters):
    assert isinstance(open_counters(), QuotaCounters)


async def test_the_limit_is_reached_exactly(open_counters):
    counters = open_counters()
    answers = [await counters.check_and_increment([[req("k", 3)]], time.time()) for _ in range(5)]
    assert answers == [[[False]]] * 3 + [[[True]]] * 2


async def test_a_group_is_counted_all_or_none(open_counters):
    counters = open_counters()
    now = time.time()
    assert await counters.check_and_increment([[req("a", 2, 2)]], now) == [[False]]
    # "a" is full: the group is rejected for "a" alone, and "b" is not counted either.
    assert await counters.check_and_increment([[req("a", 2), req("b", 1)]], now) == [[True, False]]
    assert await counters.check_and_increment([[req("b", 1)]], now) == [[False]]
    assert await counters.check_and_increment([[req("b", 1)]], now) == [[True]]


async def test_groups_of_one_call_are_decided_in_order_and_independently(open_counters):
    counters = open_counters()
    now = time.time()
    result = await counters.check_and_increment([[req("x", 1)], [req("x", 1)], [req("y", None, 50)], []], now)
    assert result == [[False], [True], [False], []]


async def test_no_limit_counts_and_never_rejects(open_counters):
    counters = open_counters()
    for _ in range(3):
        assert await counters.check_and_increment([[req("free", None, 1000)]], time.time()) == [[False]]
    # ... and what it counted is what a limited request on the same key sees.
    assert await counters.check_and_increment([[req("free", 3000)]], time.time()) == [[True]]


async def test_an_ended_window_starts_from_zero(open_counters):
    counters = open_counters()
    now = time.time()
    ended = CounterRequest("w", 1, 1, int(now) - 120)  # its window (and Redis's grace) is over
    assert await counters.check_and_increment([[ended]], now - 130) == [[False]]
    assert await counters.check_and_increment([[ended]], now) == [[False]]  # forgotten: counted afresh


async def test_concurrent_calls_never_pass_the_limit(open_counters):
    counters = open_counters()
    answers: list[bool] = []

    async def one() -> None:
        [[rejected]] = await counters.check_and_increment([[req("busy", 20)]], time.time())
        answers.append(rejected)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(one)
    assert answers.count(False) == 20 and answers.count(True) == 40


async def test_two_rate_limiters_sharing_the_backend_see_one_count(open_counters):
    # Two relays: each its own RateLimiter and its own connection, one quota of 5 errors per hour.
    quota = Quota(id=f"shared-{uuid.uuid4().hex[:8]}", categories=("error",), limit=5, window=3600,
                  reason_code="too_many_errors")
    relays = [RateLimiter(open_counters()), RateLimiter(open_counters())]
    accepted = []
    for index in range(10):
        result = await relays[index % 2].check(1, None, {"error": 1}, [quota])
        accepted.append("error" in result.accepted)
    assert accepted == [True] * 5 + [False] * 5
    # The relay that did not see the rejection itself still rejects (from the shared counter).
    assert "error" in (await relays[0].check(1, None, {"error": 1}, [quota])).rejected


# -- same answers as the memory counters --------------------------------------------------------------

requests = st.builds(lambda key, limit, quantity: (key, limit, quantity),
                     st.sampled_from("abcd"), st.one_of(st.none(), st.integers(0, 6)), st.integers(0, 4))
calls = st.lists(st.lists(st.lists(requests, max_size=3), max_size=3), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=calls)
def test_same_answers_as_memory_counters_for_any_sequence(open_counters, anyio_backend, sequence):
    expires_at = int(time.time() // 3600 + 1) * 3600
    run = uuid.uuid4().hex[:8]  # fresh counters per example, on the shared backend too

    async def answers(counters) -> list:
        out = []
        for call in sequence:
            groups = [[CounterRequest(f"{run}:{k}", limit, q, expires_at) for k, limit, q in group] for group in call]
            out.append(await counters.check_and_increment(groups, time.time()))
        return out

    async def both() -> tuple:
        return await answers(MemoryQuotaCounters()), await answers(open_counters())

    expected, actual = anyio.run(both, backend=anyio_backend)
    assert actual == expected


# -- failing open -----------------------------------------------------------------------------------


class Broken:
    def __init__(self) -> None:
        self.fail = True

    async def check_and_increment(self, groups, now):
        if self.fail:
            raise BackendError("Redis at redis://127.0.0.1:1/0: quota check failed: refused")
        return [[True] * len(group) for group in groups]


async def test_fail_open_accepts_while_the_backend_fails_and_logs_once(caplog):
    caplog.set_level(logging.INFO, logger="minisentry.quotas")
    broken = Broken()
    counters = FailOpenCounters(broken)
    for _ in range(3):
        assert await counters.check_and_increment([[req("k", 0), req("j", 0)]], time.time()) == [[False, False]]
    assert counters.failed_open == 3
    assert [r.message for r in caplog.records].count(
        "quota counters unavailable, accepting without enforcing quotas: "
        "Redis at redis://127.0.0.1:1/0: quota check failed: refused") == 1
    broken.fail = False
    assert await counters.check_and_increment([[req("k", 0)]], time.time()) == [[True]]
    assert "quota counters available again" in caplog.text
