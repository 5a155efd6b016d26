"""The on-disk cache of derived files: bounded by bytes, least recently used evicted, atomic writes."""

from __future__ import annotations

import os
import time

import pytest

from minisentry.diskcache import DiskCache


def _write(data: bytes):
    return lambda file: file.write(data)


def test_at_the_byte_limit_the_least_recently_used_file_goes(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=250)
    for key in ("a", "b"):
        cache.put(key, _write(b"x" * 100))
        time.sleep(0.01)  # distinct modification times order the files
    os.utime(tmp_path / "a", (time.time() + 5, time.time() + 5))  # as if 'a' was just read
    assert cache.put("c", _write(b"y" * 100)) == tmp_path / "c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]  # 'b' was the least recently used
    assert cache.size_bytes == 200 and cache.evictions == 1
    assert cache.get("b") is None and cache.get("a") == tmp_path / "a"
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_file_larger_than_the_whole_budget_is_not_kept(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=50)
    cache.put("small", _write(b"s" * 10))
    assert cache.put("huge", _write(b"h" * 51)) is None
    assert [p.name for p in tmp_path.iterdir()] == ["small"] and cache.size_bytes == 10


def test_a_failed_write_leaves_nothing_behind_and_existing_files_are_counted_at_start(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=1000)
    cache.put("kept", _write(b"k" * 30))

    def broken(file):
        file.write(b"partial")
        raise RuntimeError("disk trouble")

    with pytest.raises(RuntimeError):
        cache.put("broken", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert DiskCache(tmp_path, max_bytes=1000).size_bytes == 30  # a restarted process sees what is there


@pytest.mark.parametrize("key", ["", "../escape", "a/b", ".hidden", "x" * 300])
def test_keys_are_plain_file_names(tmp_path, key):
    with pytest.raises(ValueError):
        DiskCache(tmp_path, max_bytes=10).get(key)
