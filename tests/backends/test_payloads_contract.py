"""The PayloadStore contract (payloads.py), run against the memory store and the real Redis.

To add a backend, add a param to ``payload_store``'s fixture. TTL tests wait on the real clock
(well under a second each); the memory store's byte bound is tested with an injected clock.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.errors import BackendError, BackendFull
from minisentry.payloads import ENTRY_OVERHEAD, MemoryPayloadStore, PayloadStore

LIMIT = 4096


@pytest.fixture(params=[pytest.param("memory", id="memory"),
                        pytest.param("redis", id="redis", marks=pytest.mark.services)])
def payload_store(request):
    """A store that refuses a payload over LIMIT bytes (memory: LIMIT in all)."""
    if request.param == "memory":
        yield MemoryPayloadStore(max_bytes=LIMIT)
        return
    from minisentry.backends.redis_payloads import RedisPayloadStore

    url, prefix = request.getfixturevalue("redis_prefix")
    store = RedisPayloadStore(url, prefix=prefix, max_payload_bytes=LIMIT)
    yield store
    store.close()


def wait_until_gone(store, key: str, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while store.get(key) is not None:
        assert time.monotonic() - started < timeout, f"{key} did not expire"
        time.sleep(0.02)
    return time.monotonic() - started


def test_follows_the_protocol(payload_store):
    assert isinstance(payload_store, PayloadStore)
    assert payload_store.name in ("memory", "redis")


def test_put_get_delete(payload_store):
    assert payload_store.get("missing") is None
    payload_store.put("a", b"\x00first\xff", ttl=30)
    assert payload_store.get("a") == b"\x00first\xff"
    payload_store.put("a", b"second", ttl=30)  # replaces
    assert payload_store.get("a") == b"second"
    payload_store.put("empty", b"", ttl=30)
    assert payload_store.get("empty") == b""  # empty is not missing
    payload_store.delete("a")
    assert payload_store.get("a") is None
    payload_store.delete("a")  # deleting what is gone is fine


def test_entries_expire_after_their_ttl(payload_store):
    payload_store.put("short", b"gone soon", ttl=0.2)
    payload_store.put("long", b"stays", ttl=30)
    assert payload_store.get("short") == b"gone soon"
    assert 0.1 < wait_until_gone(payload_store, "short") < 2.0
    assert payload_store.get("long") == b"stays"


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True, "5"])
def test_a_ttl_that_is_not_positive_and_finite_is_refused(payload_store, ttl):
    with pytest.raises(ValueError, match="ttl"):
        payload_store.put("k", b"x", ttl=ttl)
    assert payload_store.get("k") is None


def test_at_the_limit_a_payload_that_does_not_fit_raises_backend_full_and_stores_nothing(payload_store):
    with pytest.raises(BackendFull):
        payload_store.put("big", b"x" * (LIMIT + 1), ttl=30)
    assert payload_store.get("big") is None
    assert isinstance(BackendFull("x"), BackendError)  # callers catching BackendError see it too


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=50), data=st.binary(max_size=512))
def test_any_key_and_bytes_round_trip(payload_store, key, data):
    payload_store.put(key, data, ttl=30)
    assert payload_store.get(key) == data
    payload_store.delete(key)
    assert payload_store.get(key) is None


# -- the memory store's byte bound -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_is_bounded_in_total_bytes_and_expired_entries_make_room():
    clock = Clock()
    cost = 1 + 100 + ENTRY_OVERHEAD  # key "a".."d" + 100 bytes
    store = MemoryPayloadStore(max_bytes=3 * cost, clock=clock)
    for key in "abc":
        store.put(key, b"x" * 100, ttl=10)
    assert store.size_bytes == 3 * cost
    with pytest.raises(BackendFull, match="memory payload store is full"):
        store.put("d", b"x" * 100, ttl=10)
    assert store.get("d") is None and len(store) == 3  # nothing live was evicted to make room
    store.put("a", b"y" * 100, ttl=10)  # replacing an entry of the same size fits
    store.delete("b")
    store.put("d", b"x" * 100, ttl=10)  # a delete made room
    clock.now += 10  # a, c, d expire: evicted at the next put, so they do not count
    assert store.get("a") is None
    store.put("e", b"x" * 100, ttl=10)
    assert (len(store), store.size_bytes) == (1, cost)


def test_memory_store_refuses_a_bad_limit():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_bytes"):
            MemoryPayloadStore(max_bytes=bad)


def test_memory_store_heap_stays_bounded_under_replacements():
    store = MemoryPayloadStore(max_bytes=10_000)
    for i in range(5000):
        store.put("same", b"x", ttl=60 + i)
    assert len(store) == 1 and len(store._heap) <= 2 * len(store) + 65
