"""Registers the native (``native``) and JVM (``proguard``) symbolicators over uploaded debug files."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..hookspecs import hookimpl


class _Bound:
    """Opens the dif store for ``bind(config)``; None with ``[native] enabled = false``. Raises StorageError."""

    name = ""

    def _store(self, config: Config) -> Any:
        from ..chunks import ChunkStore
        from ..difs import DifStore

        settings = config.sourcemaps
        chunks = ChunkStore(settings.path, max_bytes=settings.max_chunk_store_bytes, max_age=settings.chunk_max_age)
        return DifStore(settings.path, config.native, chunks).open()


class NativeSymbolicators(_Bound):
    """Symbolicator ``native``: ``bind(config)`` opens the dif store (blocking) and returns the symbolicator."""

    name = "native"

    def bind(self, config: Config) -> Any:
        from ..nativesymbolicate import NativeSymbolicator

        native = config.native
        if not native.enabled:
            return None
        from ..diskcache import DiskCache

        disk = DiskCache(config.sourcemaps.path / "symcaches", native.disk_cache_bytes)
        return NativeSymbolicator(self._store(config), cache_bytes=native.cache_bytes,
                                  negative_ttl=native.negative_cache_seconds, max_frames=native.max_frames_per_event,
                                  disk=disk)


class ProguardSymbolicators(_Bound):
    """Symbolicator ``proguard``: ``bind(config)`` opens the dif store (blocking) and returns the symbolicator."""

    name = "proguard"

    def bind(self, config: Config) -> Any:
        from ..proguardsymbolicate import ProguardSymbolicator

        native = config.native
        if not native.enabled:
            return None
        return ProguardSymbolicator(self._store(config), cache_bytes=native.cache_bytes,
                                    negative_ttl=native.negative_cache_seconds,
                                    max_frames=native.max_frames_per_event)


@hookimpl
def minisentry_register_symbolicators():
    return [NativeSymbolicators(), ProguardSymbolicators()]
