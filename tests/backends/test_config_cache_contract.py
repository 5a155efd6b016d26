"""The ConfigCache contract (config_cache.py) against the memory cache and the real Redis."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.config_cache import ConfigCache, MemoryConfigCache
from minisentry.errors import BackendFull

MAX_ENTRY = 2048


@pytest.fixture(params=[pytest.param("memory", id="memory"),
                        pytest.param("redis", id="redis", marks=pytest.mark.services)])
def open_cache(request):
    """``open_cache(ttl=...)`` builds a cache whose entries are at most MAX_ENTRY bytes."""
    opened: list = []

    def open_(ttl: float = 300.0):
        if request.param == "memory":
            return MemoryConfigCache(ttl=ttl, max_entry_bytes=MAX_ENTRY)
        from minisentry.backends.redis_config_cache import RedisConfigCache

        url, prefix = request.getfixturevalue("redis_prefix")
        cache = RedisConfigCache(url, prefix=prefix, ttl=ttl, max_entry_bytes=MAX_ENTRY)
        opened.append(cache)
        return cache

    yield open_
    for cache in opened:
        cache.close()


def test_follows_the_protocol(open_cache):
    assert isinstance(open_cache(), ConfigCache)


def test_put_get_delete(open_cache):
    cache = open_cache()
    assert cache.get(1) is None
    cache.put(1, b'{"disabled": false}')
    cache.put(2, b"two")
    assert (cache.get(1), cache.get(2)) == (b'{"disabled": false}', b"two")
    cache.put(1, b"newer")  # a writer replaces what it changed
    assert cache.get(1) == b"newer"
    cache.delete(1)
    cache.delete(1)
    assert (cache.get(1), cache.get(2)) == (None, b"two")


def test_entries_expire_after_the_ttl(open_cache):
    cache = open_cache(ttl=0.2)
    cache.put(5, b"config")
    assert cache.get(5) == b"config"
    deadline = time.monotonic() + 5
    while cache.get(5) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_config_over_the_entry_limit_raises_backend_full_and_is_not_stored(open_cache):
    cache = open_cache()
    cache.put(3, b"x" * MAX_ENTRY)  # exactly at the limit fits
    with pytest.raises(BackendFull, match="entry limit"):
        cache.put(3, b"x" * (MAX_ENTRY + 1))
    assert cache.get(3) == b"x" * MAX_ENTRY  # the old value stays


@pytest.mark.parametrize("project_id", [0, -1, True, "1", 1.0])
def test_project_ids_must_be_positive_integers(open_cache, project_id):
    cache = open_cache()
    for call in (lambda: cache.get(project_id), lambda: cache.put(project_id, b"x"), lambda: cache.delete(project_id)):
        with pytest.raises(ValueError, match="project_id"):
            call()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project_id=st.integers(1, 2**62), data=st.binary(max_size=MAX_ENTRY))
def test_any_config_bytes_round_trip(open_cache, project_id, data):
    cache = open_cache()
    cache.put(project_id, data)
    assert cache.get(project_id) == data


def test_memory_cache_at_max_entries_evicts_the_least_recently_used():
    cache = MemoryConfigCache(max_entries=2)
    cache.put(1, b"one")
    cache.put(2, b"two")
    assert cache.get(1) == b"one"  # 1 is now the most recently used
    cache.put(3, b"three")
    assert (cache.get(1), cache.get(2), cache.get(3)) == (b"one", None, b"three")
    assert (len(cache), cache.evicted) == (2, 1)
