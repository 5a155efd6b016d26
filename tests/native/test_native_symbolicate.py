"""The native and ProGuard symbolicators on real gcc output and real symbolic, without HTTP."""

from __future__ import annotations

import re
import subprocess

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.chunks import ChunkStore
from minisentry.config_native import NativeConfig
from minisentry.difs import DifStore
from minisentry.messages import EventMessage
from minisentry.nativeframes import find_image, images_of, parse_addr
from minisentry.nativesymbolicate import NativeSymbolicator
from minisentry.proguardsymbolicate import ProguardSymbolicator

pytestmark = pytest.mark.anyio

BASE = 0x7F00_0000_0000
MAPPING = (b"com.example.shop.Checkout -> a.a:\n    3:5:int parsePrice(java.lang.String):20:22 -> a\n"
           b"com.example.shop.PriceError -> a.b:\n")


@pytest.fixture
def difs(tmp_path):
    return DifStore(tmp_path, NativeConfig(), ChunkStore(tmp_path, max_bytes=1 << 20, max_age=60)).open()


def message(event: dict) -> EventMessage:
    return EventMessage(project_id=1, event_id="a" * 32, item_type="event", received=0.0, payload=orjson.dumps(event))


def idiv_in_outer(binary) -> int:
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)], capture_output=True, text=True).stdout
    body = out.split("<outer>:")[1]
    return int(re.search(r"^\s+([0-9a-f]+):\s+idiv", body, re.MULTILINE).group(1), 16)


def native(debug_id: str, *frames: dict) -> dict:
    return {"platform": "native", "exception": {"values": [{"type": "SIGFPE", "stacktrace": {"frames": list(frames)}}]},
            "debug_meta": {"images": [{"type": "elf", "debug_id": debug_id, "image_addr": hex(BASE),
                                       "image_size": 0x5000, "code_file": "/bin/inl"}]}}


def symbolicator(difs, **overrides) -> NativeSymbolicator:
    options = {"cache_bytes": 1 << 26, "negative_ttl": 60.0, "max_frames": 100, **overrides}
    return NativeSymbolicator(difs, **options)


async def test_inlined_functions_become_frames_outermost_first(difs, inline_binary):
    info = difs.add(inline_binary.read_bytes(), "inl", [1])
    debug_id = info.objects[0].debug_id
    crash = {"instruction_addr": hex(BASE + idiv_in_outer(inline_binary)), "adjust_instruction_addr": False}
    result = await symbolicator(difs).symbolicate(message(native(debug_id, crash)))
    event = orjson.loads(result.payload)
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert [(f["function"], f["lineno"]) for f in frames] == [("outer", 6), ("inner", 3)]
    assert int(frames[0]["sym_addr"], 16) - BASE < idiv_in_outer(inline_binary)  # where outer starts
    assert "sym_addr" not in frames[1] and frames[1]["filename"] == "inl.c" and result.errors == []
    assert len(event["exception"]["values"][0]["raw_stacktrace"]["frames"]) == 1


async def test_missing_debug_file_and_unknown_image_are_errors_and_misses_are_remembered(difs):
    symbolicate = symbolicator(difs)
    event = native("0badc0de-0000-4000-8000-000000000001", {"instruction_addr": hex(BASE + 0x1140)},
                   {"instruction_addr": "0x10"})
    for _ in range(2):
        result = await symbolicate.symbolicate(message(event))
        assert {error["type"] for error in result.errors} == {"native_missing_dsym", "native_unknown_image"}
        assert orjson.loads(result.payload)["exception"]["values"][0]["stacktrace"]["frames"][0].get("function") is None
    assert symbolicate.cache.statistics()["negative_hits"] == 1  # the index was asked once


async def test_frame_budget_and_cache_bound(difs, inline_binary):
    debug_id = difs.add(inline_binary.read_bytes(), "inl", [1]).objects[0].debug_id
    frames = [{"instruction_addr": hex(BASE + 0x1139)}] * 3
    small = symbolicator(difs, max_frames=2, cache_bytes=100)  # smaller than the debug file: never kept
    for _ in range(2):
        result = await small.symbolicate(message(native(debug_id, *frames)))
        assert [error["type"] for error in result.errors] == ["native_too_many_frames"]
    stats = small.cache.statistics()
    assert stats["entries"] == 0 and stats["misses"] == 4 and small.symbolicated_frames == 4


async def test_events_without_native_images_pass_untouched(difs):
    original = message({"platform": "python", "message": "hi"})
    payload = original.payload
    assert (await symbolicator(difs).symbolicate(original)).payload is payload


async def test_proguard_remaps_frames_and_exception_and_records_missing(difs):
    uuid = difs.add(MAPPING, "/proguard/m.txt", [1]).objects[0].debug_id
    event = {"platform": "java", "exception": {"values": [{"type": "b", "module": "a", "stacktrace": {"frames": [
        {"module": "a.a", "function": "a", "lineno": 4}, {"module": "a.a", "function": "a"}]}}]},
        "debug_meta": {"images": [{"type": "proguard", "uuid": uuid},
                                  {"type": "proguard", "uuid": "11111111-2222-3333-4444-555555555555"}]}}
    proguard = ProguardSymbolicator(difs, cache_bytes=1 << 20, negative_ttl=60.0, max_frames=100)
    result = await proguard.symbolicate(message(event))
    value = orjson.loads(result.payload)["exception"]["values"][0]
    assert (value["module"], value["type"]) == ("com.example.shop", "PriceError")
    first, second = value["stacktrace"]["frames"]
    assert (first["module"], first["function"], first["lineno"]) == ("com.example.shop.Checkout", "parsePrice", 21)
    assert (second["function"], "lineno" in second) == ("parsePrice", False)
    assert {error["type"] for error in result.errors} == {"proguard_missing_mapping", "proguard_missing_lineno"}


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(
    ["0x0", "0x1000", "0xffffffffffffffff", "0x10000000000000000", "rel:0", "rel:x", "elf", "pe"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["type", "debug_id", "code_id", "image_addr", "image_size", "images", "x"]), inner, max_size=5), max_leaves=20),
    st.integers(0, 2**64 - 1), st.none() | st.text(max_size=8))
def test_image_and_address_parsing_never_raise(meta, addr, mode):
    images = images_of({"debug_meta": meta})
    found = find_image(images, addr, mode)
    assert found is None or found[1] >= 0 or mode
    parse_addr(meta)


async def test_built_symbol_caches_are_kept_on_disk_and_read_back_after_a_restart(difs, inline_binary, tmp_path):
    from minisentry.diskcache import DiskCache

    info = difs.add(inline_binary.read_bytes(), "inl", [1])
    debug_id = info.objects[0].debug_id
    crash = {"instruction_addr": hex(BASE + idiv_in_outer(inline_binary)), "adjust_instruction_addr": False}
    first = symbolicator(difs, disk=DiskCache(tmp_path / "symcaches", 1 << 24))
    await first.symbolicate(message(native(debug_id, crash)))
    assert first.statistics()["disk_misses"] == 1 and len(list((tmp_path / "symcaches").iterdir())) == 1

    restarted = symbolicator(difs, disk=DiskCache(tmp_path / "symcaches", 1 << 24))  # a new process: empty memory
    result = await restarted.symbolicate(message(native(debug_id, crash)))
    frames = orjson.loads(result.payload)["exception"]["values"][0]["stacktrace"]["frames"]
    assert [(f["function"], f["lineno"]) for f in frames] == [("outer", 6), ("inner", 3)]
    assert (restarted.statistics()["disk_hits"], restarted.statistics()["disk_misses"]) == (1, 0)

    # A corrupt cached file is rebuilt, not trusted.
    cached = next((tmp_path / "symcaches").iterdir())
    cached.write_bytes(b"not a symcache")
    again = symbolicator(difs, disk=DiskCache(tmp_path / "symcaches", 1 << 24))
    result = await again.symbolicate(message(native(debug_id, crash)))
    assert orjson.loads(result.payload)["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] == "outer"
    assert cached.read_bytes() != b"not a symcache"
