"""``[native]``: uploaded debug files (native and ProGuard) and the native and JVM symbolicators.

Debug files live in the artifact store's folder (``[sourcemaps] path``), under ``difs/``, indexed in
the same ``index.sqlite``. Every limit here has a test saying what happens when it is reached
(tests/native/test_dif_uploads.py, tests/native/test_native_symbolicate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError

__all__ = ["NativeConfig", "validate_native"]

MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class NativeConfig:
    """``[native]``: debug-file uploads (``sentry-cli debug-files upload``, ``proguard upload``) and symbolication."""

    #: Register the native and ProGuard symbolicators (the upload route is served either way).
    enabled: bool = True
    #: One debug file once assembled; a larger one is answered ``state: error``.
    max_file_bytes: int = 256 * MiB
    #: Every stored debug file together; an assemble past it is answered ``state: error``.
    max_store_bytes: int = 16 * 1024 * MiB
    #: Symbol caches and ProGuard mappers kept in memory (by the size of their debug file), LRU.
    cache_bytes: int = 512 * MiB
    #: Built native symbol caches kept on disk (``<[sourcemaps] path>/symcaches``), least recently used evicted.
    disk_cache_bytes: int = 2048 * MiB
    #: How long a missing or broken debug file is remembered as such before it is looked up again.
    negative_cache_seconds: float = 60.0
    #: Frames symbolicated per event; further frames are left as they are (with an error entry).
    max_frames_per_event: int = 2000


def validate_native(config: Any, label: str, positive: Callable[[str, float], None]) -> None:
    """Check ``[native]``; raise ConfigError naming the key."""
    native: NativeConfig = config.native
    for name in ("max_file_bytes", "max_store_bytes", "cache_bytes", "disk_cache_bytes", "negative_cache_seconds",
                 "max_frames_per_event"):
        positive(f"native.{name}", getattr(native, name))
    if native.max_file_bytes > native.max_store_bytes:
        raise ConfigError(f"{label}: native.max_file_bytes must not exceed native.max_store_bytes")
