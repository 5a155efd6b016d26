"""Relay's event normalizer (``sentry_relay.StoreNormalizer``), called without the Python detours.

``StoreNormalizer.normalize_event(raw_event=...)`` does three things around the Rust call that cost
~90 µs for a 6 KB event on our benchmark machine, a fifth of normalizing it: it copies the payload
into a mutable buffer and runs Relay's legacy-Python-JSON translation over it, and it decodes the
result to ``str`` before parsing it. :func:`normalize` gives the Rust normalizer the payload's bytes
as they are and parses its output bytes directly, which is the same result:

* The translation (Sentry's ``json-forensics``) only ever rewrites three things: ``NaN`` and
  ``Infinity`` tokens and runs of digits too large for a 64-bit integer (20 digits or more). A
  payload holding none of ``NaN``, ``Infinity`` or 20 consecutive ASCII digits — anywhere, strings
  included, so the test is a superset — comes out of it unchanged, so it is skipped for those.
* Relay's output is JSON that Rust wrote from its own strings, so valid UTF-8: decoding it first
  only to have ``orjson`` encode it again changes nothing. (``tests/test_normalizer.py`` checks both
  paths agree, with Hypothesis.)

The per-project normalizers are cached per thread (bounded by :data:`MAX_CACHED_NORMALIZERS`).
If the installed ``sentry-relay`` lacks the internals used here, the public API is used instead.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from sentry_relay import StoreNormalizer

try:  # internals of sentry-relay's Python binding, present in the 0.9/0.10 line
    from sentry_relay._lowlevel import ffi, lib
    from sentry_relay.processing import _encode_raw_event
    from sentry_relay.utils import encode_str

    _NORMALIZE = lib.relay_store_normalizer_normalize_event
except (ImportError, AttributeError):  # pragma: no cover - another binding: the public API only
    _NORMALIZE = None

__all__ = ["MAX_CACHED_NORMALIZERS", "MAX_SECS_IN_FUTURE", "MAX_SECS_IN_PAST", "normalize", "normalizer_for",
           "needs_legacy_translation"]

#: Timestamps further ahead than this are set to the time received (Relay's default: 1 minute).
MAX_SECS_IN_FUTURE = 60
#: Timestamps further back than this are set to the time received (Relay's default: 30 days).
MAX_SECS_IN_PAST = 30 * 86400
#: Normalizers cached per project in each thread; the cache is cleared when it reaches this.
MAX_CACHED_NORMALIZERS = 1024

_local = threading.local()
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONGEST_SAFE_DIGIT_RUN = b"0" * 20


def normalizer_for(project_id: int) -> StoreNormalizer:
    """This thread's normalizer for ``project_id`` (built once: that parses its config in Rust)."""
    cache = getattr(_local, "normalizers", None)
    if cache is None:
        cache = _local.normalizers = {}
    normalizer = cache.get(project_id)
    if normalizer is None:
        if len(cache) >= MAX_CACHED_NORMALIZERS:
            cache = _local.normalizers = {}
        normalizer = cache[project_id] = StoreNormalizer(
            project_id=project_id, enable_trimming=True, normalize_user_agent=True,
            max_secs_in_future=MAX_SECS_IN_FUTURE, max_secs_in_past=MAX_SECS_IN_PAST,
        )
    return normalizer


def needs_legacy_translation(payload: bytes) -> bool:
    """True if Relay's legacy-JSON translation could change ``payload`` (see the module docstring)."""
    return (b"NaN" in payload or b"Infinity" in payload
            or _LONGEST_SAFE_DIGIT_RUN in payload.translate(_DIGITS_TO_ZERO))


def normalize(project_id: int, payload: bytes) -> Any:
    """Return ``payload`` (a JSON event) normalized by Relay for ``project_id``, parsed.

    Blocks on CPU (Rust; safe in a worker thread or process). Raises RelayError if Relay refuses
    the payload and ValueError if its output is not JSON.
    """
    normalizer = normalizer_for(project_id)
    if not isinstance(payload, bytes):
        payload = bytes(payload)
    if _NORMALIZE is None:
        return normalizer.normalize_event(raw_event=payload, json_loads=orjson.loads)
    raw = _encode_raw_event(payload) if needs_legacy_translation(payload) else encode_str(payload)
    result = normalizer._methodcall(_NORMALIZE, raw)
    try:
        return orjson.loads(ffi.unpack(result.data, result.len))
    finally:
        if result.owned:
            lib.relay_str_free(ffi.addressof(result))
