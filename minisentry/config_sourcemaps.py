"""``[sourcemaps]``: the artifact store for uploaded source maps and the JavaScript symbolicator.

Kept apart from ``config.py`` (which is long enough) like ``config_scaling.py``. Every limit here
has a test saying what happens when it is reached (tests/test_artifacts.py, tests/test_fetcher.py).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .clientip import parse_networks
from .errors import ConfigError

__all__ = ["SourcemapsConfig", "validate_sourcemaps"]

MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SourcemapsConfig:
    """``[sourcemaps]``: uploads (sentry-cli's chunk upload), their store and JS symbolication."""

    #: Register the JavaScript symbolicator (the upload routes are served either way).
    enabled: bool = True
    #: The organization slug uploads must name (``sentry-cli --org``); others are 404.
    organization: str = "minisentry"
    #: Folder of chunks, bundles and the index; default: ``artifacts`` next to the event store.
    path: Path | None = None
    #: The largest chunk (decompressed) a client may send; announced as ``chunkSize``.
    chunk_size: int = 8 * MiB
    chunks_per_request: int = 64
    #: The largest chunk-upload request body (decompressed); announced as ``maxRequestSize``.
    max_request_bytes: int = 32 * MiB
    #: Chunks waiting to be assembled, in total (older than ``chunk_max_age`` are removed first).
    max_chunk_store_bytes: int = 512 * MiB
    chunk_max_age: float = 3600.0
    #: One assembled bundle (a zip), and one file inside it once decompressed.
    max_bundle_bytes: int = 256 * MiB
    max_file_bytes: int = 64 * MiB
    max_bundle_files: int = 10_000
    #: Every stored bundle together; an assemble past it is refused (413).
    max_store_bytes: int = 4096 * MiB
    #: Parsed source maps and minified files kept in memory (by their size in bytes), LRU.
    cache_bytes: int = 256 * MiB
    #: How long a missing or broken file is remembered as such before it is looked up again.
    negative_cache_seconds: float = 60.0
    #: Lines of source around a frame's line (``pre_context``/``post_context``).
    context_lines: int = 5
    #: Fetch minified files and source maps over HTTP when no upload has them.
    fetch: bool = True
    #: Host names that may be fetched (globs: ``*.example.com``); ``*`` allows any public host.
    fetch_allowed_hosts: list[str] = field(default_factory=lambda: ["*"])
    #: Networks fetched although not public (loopback/private/link-local are refused otherwise).
    fetch_private_networks: list[str] = field(default_factory=list)
    fetch_max_bytes: int = 20 * MiB
    fetch_timeout: float = 10.0
    fetch_max_redirects: int = 5

    def host_allowed(self, host: str) -> bool:
        """Return whether ``host`` (lowercase) matches ``fetch_allowed_hosts``."""
        return any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in self.fetch_allowed_hosts)


def validate_sourcemaps(config: Any, label: str, positive: Callable[[str, float], None]) -> None:
    """Check ``[sourcemaps]``; raise ConfigError naming the key."""
    sourcemaps: SourcemapsConfig = config.sourcemaps
    for name in ("chunk_size", "chunks_per_request", "max_request_bytes", "max_chunk_store_bytes", "chunk_max_age",
                 "max_bundle_bytes", "max_file_bytes", "max_bundle_files", "max_store_bytes", "cache_bytes",
                 "negative_cache_seconds", "fetch_max_bytes", "fetch_timeout"):
        positive(f"sourcemaps.{name}", getattr(sourcemaps, name))
    if sourcemaps.chunk_size > sourcemaps.max_request_bytes:
        raise ConfigError(f"{label}: sourcemaps.chunk_size must not exceed sourcemaps.max_request_bytes")
    if not 0 <= sourcemaps.context_lines <= 50:
        raise ConfigError(f"{label}: sourcemaps.context_lines must be 0..50, got {sourcemaps.context_lines}")
    if not 0 <= sourcemaps.fetch_max_redirects <= 20:
        raise ConfigError(f"{label}: sourcemaps.fetch_max_redirects must be 0..20")
    if not sourcemaps.organization or not sourcemaps.organization.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{label}: sourcemaps.organization must be a slug, got {sourcemaps.organization!r}")
    try:
        parse_networks(sourcemaps.fetch_private_networks)
    except ValueError as exc:
        raise ConfigError(f"{label}: sourcemaps.fetch_private_networks: {exc}") from exc
