"""normalizer.normalize against sentry-relay's public StoreNormalizer.normalize_event: the same result.

The fast path skips Relay's legacy-JSON translation when it cannot change the payload and parses
Relay's output bytes directly; both must be invisible.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_relay.exceptions import RelayError

from minisentry import normalizer
from minisentry.normalizer import needs_legacy_translation, normalize, normalizer_for

PROJECT = 7


def reference(payload: bytes):
    """What the public API returns, or the exception type it raises."""
    try:
        return normalizer_for(PROJECT).normalize_event(raw_event=payload, json_loads=orjson.loads)
    except (RelayError, ValueError) as exc:
        return type(exc)


def ours(payload: bytes):
    try:
        return normalize(PROJECT, payload)
    except (RelayError, ValueError) as exc:
        return type(exc)


def same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        # Relay fills in the time of normalization and a random id where the event has none.
        for event in (a, b):
            for key in ("received", "timestamp"):
                event.pop(key, None)
            event_id = event.pop("event_id", None)
            trace = (event.get("contexts") or {}).get("trace") or {}
            if event_id is not None and trace.get("trace_id") == event_id:
                del event["contexts"]["trace"]  # made up from the made-up id
    return a == b


def test_the_fast_path_is_taken_for_ordinary_events():
    event = {"message": "hello", "extra": {"n": 1234567890123456789, "f": 1.5}}
    assert not needs_legacy_translation(json.dumps(event).encode())


@pytest.mark.parametrize("payload", [
    b'{"message": "x", "extra": {"a": NaN, "b": Infinity, "c": -Infinity}}',
    b'{"message": "x", "extra": {"big": 123456789012345678901234567890}}',
    b'{"message": "x", "extra": {"neg": -99999999999999999999}}',
    b'{"message": "NaN and Infinity in a string", "extra": {"id": "123456789012345678901234"}}',
    b'{"message": "x", "extra": {"max": 18446744073709551615, "min": -9223372036854775808}}',
    b'{"message": "x", "extra": {"float": 123456789012345678901234.5, "exp": 1e400}}',
])
def test_payloads_the_translation_rewrites_come_out_as_relay_makes_them(payload):
    assert needs_legacy_translation(payload) or b"18446744073709551615" in payload
    assert same(ours(payload), reference(payload))


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1" * 25]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.dictionaries(st.text(max_size=10), _values, max_size=5), message=st.text(max_size=40),
       bare=st.lists(st.sampled_from(["NaN", "Infinity", "-Infinity", "123456789012345678901234"]), max_size=2))
def test_fast_path_equals_relays_public_api(extra, message, bare):
    payload = json.dumps({"message": message, "extra": extra, "level": "error"}).encode()
    for index, token in enumerate(bare):
        # Python's json module writes NaN/Infinity bare; big integers are valid JSON already.
        payload = payload[:-1] + f', "bare{index}": {token}}}'.encode()
    assert same(ours(payload), reference(payload))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_the_same_result_or_the_same_error(data):
    assert same(ours(data), reference(data))


def test_without_relays_internals_the_public_api_is_used(monkeypatch):
    monkeypatch.setattr(normalizer, "_NORMALIZE", None)
    event = normalize(PROJECT, b'{"message": "hello", "extra": {"x": NaN}}')
    assert event["logentry"]["formatted"] == "hello" and event["extra"]["x"] == 0


def test_relay_errors_do_not_capture_rust_backtraces():
    """sentry-relay enables Rust backtraces on import; one per malformed payload costs ~70 ms of CPU."""
    import subprocess
    import sys

    script = ("import minisentry\n"
              "from minisentry.normalizer import normalize\n"
              "try:\n    normalize(1, b'{\"broken\":')\nexcept Exception as exc:\n    print(exc)\n")
    env = {key: value for key, value in __import__("os").environ.items()
           if key not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("EOF while parsing")
    assert "relay_store_normalizer" not in out.stdout  # no frames: nothing was captured
