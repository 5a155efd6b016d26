"""Registers the JavaScript symbolicator as ``javascript`` (source maps; see jssymbolicate.py)."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..hookspecs import hookimpl


class JavaScriptSymbolicators:
    """Symbolicator ``javascript``: ``bind(config)`` opens the artifact store and returns the symbolicator.

    Returns None (nothing to run) with ``[sourcemaps] enabled = false``. Blocks on opening the
    store's index; raises StorageError if it cannot be opened.
    """

    name = "javascript"

    def bind(self, config: Config) -> Any:
        from ..artifacts import ArtifactStore
        from ..fetcher import Fetcher
        from ..jssymbolicate import JavaScriptSymbolicator

        settings = config.sourcemaps
        if not settings.enabled:
            return None
        artifacts = ArtifactStore(settings).open()
        fetcher = Fetcher(settings) if settings.fetch else None
        return JavaScriptSymbolicator(artifacts, fetcher, cache_bytes=settings.cache_bytes,
                                      negative_ttl=settings.negative_cache_seconds,
                                      context_lines=settings.context_lines)


@hookimpl
def minisentry_register_symbolicators():
    return [JavaScriptSymbolicators()]
