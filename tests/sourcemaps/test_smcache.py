"""The loading cache: its byte limit and eviction, negative entries with a retry-after, coalesced loads."""

from __future__ import annotations

import threading

import anyio
import pytest

from minisentry.errors import ArtifactError
from minisentry.smcache import LoadingCache

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_byte_limit_evicts_least_recently_used():
    cache = LoadingCache(max_bytes=100, negative_ttl=10, negative=(ArtifactError,))
    await cache.get("a", lambda: ("A", 40))
    await cache.get("b", lambda: ("B", 40))
    assert await cache.get("a", lambda: pytest.fail("cached")) == "A"  # a is now the most recent
    await cache.get("c", lambda: ("C", 40))  # 120 > 100: b goes
    assert cache.size == 80 and cache.evictions == 1
    assert await cache.get("b", lambda: ("B2", 40)) == "B2"
    assert await cache.get("huge", lambda: ("H", 101)) == "H"  # larger than the cache: used, not kept
    assert "huge" not in cache._values and cache.size <= 100
    assert cache.statistics()["hits"] == 1


async def test_missing_files_are_remembered_until_the_retry_after():
    clock = Clock()
    cache = LoadingCache(max_bytes=100, negative_ttl=60, negative=(ArtifactError,), clock=clock)
    loads = []

    def missing():
        loads.append(1)
        raise ArtifactError("gone", kind="js_no_source")

    for _ in range(3):
        with pytest.raises(ArtifactError):
            await cache.get("x", missing)
    assert len(loads) == 1 and cache.negative_hits == 2
    clock.now = 61  # past the retry-after: looked up again
    assert await cache.get("x", lambda: ("found", 1)) == "found"
    with pytest.raises(ValueError):  # other errors are not remembered
        await cache.get("y", lambda: (_ for _ in ()).throw(ValueError("bug")))
    assert await cache.get("y", lambda: ("ok", 1)) == "ok"


async def test_negative_entries_are_bounded():
    cache = LoadingCache(max_bytes=100, negative_ttl=60, negative=(ArtifactError,), max_negative=3)
    for key in range(5):
        with pytest.raises(ArtifactError):
            await cache.get(key, lambda: (_ for _ in ()).throw(ArtifactError("gone")))
    assert cache.statistics()["negative_entries"] == 3


async def test_concurrent_lookups_share_one_load():
    cache = LoadingCache(max_bytes=100, negative_ttl=60, negative=(ArtifactError,))
    release = threading.Event()
    loads = []

    def slow():
        loads.append(1)
        release.wait(30)
        return "value", 10

    results = []

    async def lookup():
        results.append(await cache.get("k", slow))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(lookup)
        while cache.coalesced < 4:
            await anyio.sleep(0.01)
        release.set()
    assert results == ["value"] * 5 and len(loads) == 1 and cache.misses == 1


async def test_keep_false_shares_but_does_not_keep():
    cache = LoadingCache(max_bytes=100, negative_ttl=60, negative=(ArtifactError,))
    assert await cache.get("r", lambda: ("v1", 1), keep=False) == "v1"
    assert await cache.get("r", lambda: ("v2", 1), keep=False) == "v2"
