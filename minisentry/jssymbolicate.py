"""The JavaScript symbolicator: maps minified frames of javascript/node events to their original source.

For each file a stack trace points into (a frame's ``abs_path``), the map is found, in this order:

1. **debug id**: the event's ``debug_meta.images`` entry of type ``sourcemap`` whose ``code_file`` is
   the frame's ``abs_path`` names a debug id; the uploaded ``source_map`` with that id is used
   (with the ``minified_source`` of the same id, if uploaded, to name functions by scope);
2. **release**: the event's ``release``/``dist`` and the URL candidates of ``jsframes.candidate_urls``
   (``~/path`` matching) find the uploaded minified file; its ``sourcemap`` header or
   ``sourceMappingURL`` comment names the map, looked up the same way;
3. **scraping**: for ``http(s)`` files, the minified file and then its map are fetched with the
   SSRF-safe ``Fetcher`` (``[sourcemaps] fetch``).

Failures become entries in the event's ``errors`` (``js_no_source``, ``js_invalid_source``,
``js_invalid_sourcemap_location``, ``js_missing_sources_content``, ``restricted_ip``, ``fetch_*``,
one per URL and type); the event always continues. Loaded files are cached (``smcache.py``); the
index lookups, file reads, parsing and token lookups run in worker threads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import anyio
import orjson
from symbolic import SymbolicError
from symbolic.sourcemap import SourceMapView, SourceView

from .artifacts import ArtifactStore, FileRef
from .bundle_format import normalize_debug_id
from .errors import ArtifactError, FetchError, StorageError
from .fetcher import Fetcher
from .jsframes import apply_token, candidate_urls, inline_sourcemap, join_url, minified_name, sourcemap_reference
from .messages import EventMessage
from .smcache import LoadingCache

__all__ = ["JavaScriptSymbolicator", "Source"]

log = logging.getLogger("minisentry.symbolicate.js")

_PLATFORMS = frozenset(("javascript", "node"))
#: Distinct files looked up per event; frames in further files are left as they are.
MAX_FILES_PER_EVENT = 100
_MISSING = (ArtifactError, FetchError, StorageError)


@dataclass(frozen=True, slots=True)
class Source:
    """A resolved minified file: its map, optionally its text, and how it was found."""

    sourcemap: Any  # SourceMapView
    minified: Any  # SourceView | None
    map_url: str
    base: str
    resolved_with: str


def _parse_map(data: bytes) -> tuple[Any, int]:
    try:
        return SourceMapView.from_json_bytes(data), len(data) * 2
    except SymbolicError as exc:
        raise ArtifactError(f"invalid source map: {exc}", kind="js_invalid_source") from exc


def _parse_source(data: bytes) -> tuple[Any, int]:
    return SourceView.from_bytes(data), len(data)


def _stacktraces(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name in ("exception", "threads"):
        container = event.get(name)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else ():
            if isinstance(value, dict) and isinstance(value.get("stacktrace"), dict):
                yield value["stacktrace"]
    if isinstance(event.get("stacktrace"), dict):
        yield event["stacktrace"]


def _path(frame: dict[str, Any]) -> str | None:
    """The file a frame points into: ``abs_path``, else ``filename`` (SDKs send either; normalization
    copies one to the other later)."""
    for name in ("abs_path", "filename"):
        value = frame.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _frames(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    frames = []
    for stacktrace in _stacktraces(event):
        for frame in stacktrace.get("frames") or ():
            if isinstance(frame, dict) and (path := _path(frame)) is not None and isinstance(frame.get("lineno"), int):
                frames.append((path, frame))
    return frames


class JavaScriptSymbolicator:
    """Symbolicator ``javascript`` bound to an artifact store, a fetcher and caches. See the module docstring."""

    name = "javascript"

    def __init__(self, artifacts: ArtifactStore, fetcher: Fetcher | None, *, cache_bytes: int,
                 negative_ttl: float, context_lines: int) -> None:
        self.artifacts = artifacts
        self.fetcher = fetcher
        self.context_lines = context_lines
        self.cache = LoadingCache(max_bytes=cache_bytes, negative_ttl=negative_ttl, negative=_MISSING)
        self.symbolicated_frames = 0

    # -- finding files -----------------------------------------------------------------------------

    async def _artifact(self, ref: FileRef, parse: Any) -> Any:
        """Load and parse an uploaded file; bundles are content-addressed, so this never goes stale."""
        return await self.cache.get(("file", ref.checksum, ref.path),
                                    lambda: parse(self.artifacts.read_file(ref)))

    async def _by_debug_id(self, project_id: int, abs_path: str, debug_id: str) -> Source:
        def find() -> tuple[tuple[FileRef, FileRef | None], int]:
            source_map = self.artifacts.by_debug_id(project_id, debug_id, "source_map")
            if source_map is None:
                raise ArtifactError(f"no source map uploaded with debug id {debug_id}", kind="js_no_source")
            return (source_map, self.artifacts.by_debug_id(project_id, debug_id, "minified_source")), 256

        # Debug ids name immutable files, so both hits and misses may be cached (misses expire).
        map_ref, minified_ref = await self.cache.get(("debug", project_id, debug_id), find)
        sourcemap = await self._artifact(map_ref, _parse_map)
        minified = await self._artifact(minified_ref, _parse_source) if minified_ref is not None else None
        return Source(sourcemap, minified, map_ref.url, abs_path, "debug-id")

    async def _by_release(self, project_id: int, release: str, dist: str | None, abs_path: str) -> Source:
        def find() -> tuple[FileRef, int]:
            ref = self.artifacts.by_url(project_id, release, dist, candidate_urls(abs_path))
            if ref is None:
                raise ArtifactError(f"no file for {abs_path} in release {release}", kind="js_no_source")
            return ref, 256

        # Release files can be replaced by a later upload: a hit is not kept, a miss is (for a while).
        minified_ref = await self.cache.get(("release", project_id, release, dist, abs_path), find, keep=False)
        if minified_ref.type == "source_map":
            return Source(await self._artifact(minified_ref, _parse_map), None, minified_ref.url, minified_ref.url,
                          "release")
        minified = await self._artifact(minified_ref, _parse_source)
        reference = minified_ref.sourcemap or sourcemap_reference(minified.get_source().encode())
        if reference is None:
            raise ArtifactError(f"{minified_ref.url} names no source map", kind="js_no_source")
        map_url = join_url(minified_ref.url, reference)
        inline = inline_sourcemap(map_url)
        if inline is not None:
            sourcemap = (await anyio.to_thread.run_sync(_parse_map, inline))[0]
            return Source(sourcemap, minified, minified_ref.url, minified_ref.url, "release")

        def find_map() -> tuple[FileRef, int]:
            ref = self.artifacts.by_url(project_id, release, dist, candidate_urls(map_url))
            if ref is None:
                raise ArtifactError(f"no source map {map_url} in release {release}", kind="js_no_source")
            return ref, 256

        map_ref = await self.cache.get(("release", project_id, release, dist, map_url), find_map, keep=False)
        return Source(await self._artifact(map_ref, _parse_map), minified, map_ref.url, map_ref.url, "release")

    async def _scrape(self, abs_path: str) -> Source:
        """Fetch the minified file, then its map (both cached by URL, failures remembered)."""
        fetcher = self.fetcher
        if fetcher is None:
            raise FetchError("fetching source files is disabled", kind="js_scraping_disabled")

        async def load_minified() -> tuple[tuple[Any, str | None, str], int]:
            fetched = await fetcher.fetch(abs_path)
            view, size = await anyio.to_thread.run_sync(_parse_source, fetched.body)
            return (view, sourcemap_reference(fetched.body, fetched.headers), fetched.url), size

        minified, reference, url = await self.cache.get_async(("url", abs_path), load_minified)
        if reference is None:
            raise ArtifactError(f"{abs_path} names no source map", kind="js_no_source")
        map_url = join_url(url, reference)
        inline = inline_sourcemap(map_url)
        if inline is not None:
            sourcemap = await anyio.to_thread.run_sync(_parse_map, inline)
            return Source(sourcemap[0], minified, url, url, "scraping")

        async def load_map() -> tuple[Any, int]:
            fetched = await fetcher.fetch(map_url)
            return await anyio.to_thread.run_sync(_parse_map, fetched.body)

        sourcemap = await self.cache.get_async(("url", map_url), load_map)
        return Source(sourcemap, minified, map_url, map_url, "scraping")

    async def _resolve(self, project_id: int, event: dict[str, Any], abs_path: str,
                       debug_ids: dict[str, str]) -> Source:
        """Find the map of one file (debug id, release, scraping). Raises ArtifactError/FetchError/StorageError."""
        debug_id = debug_ids.get(abs_path)
        if debug_id is not None:
            return await self._by_debug_id(project_id, abs_path, debug_id)
        release = event.get("release")
        error: Exception | None = None
        if isinstance(release, str) and release:
            dist = event.get("dist") if isinstance(event.get("dist"), str) else None
            try:
                return await self._by_release(project_id, release, dist, abs_path)
            except ArtifactError as exc:
                if exc.kind != "js_no_source":
                    raise
                error = exc
        if abs_path.startswith(("http://", "https://")):
            return await self._scrape(abs_path)
        raise error or ArtifactError(f"no source map for {abs_path}", kind="js_no_source")

    # -- the event --------------------------------------------------------------------------------

    def wants(self, message: EventMessage) -> bool:
        """Whether the event may be a javascript/node one (a byte test, no parsing). Never raises."""
        return b'"javascript"' in message.payload or b'"node"' in message.payload

    async def symbolicate(self, message: EventMessage) -> EventMessage:
        """Symbolicate a javascript/node event's frames in place; other events pass untouched.

        Never raises for a bad event or a missing file: those become ``errors`` entries.
        """
        if not self.wants(message):
            return message  # cheap test before parsing: most events of other platforms skip here
        try:
            event = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return message  # processing refuses it with the proper outcome
        if not isinstance(event, dict) or event.get("platform") not in _PLATFORMS:
            return message
        frames = _frames(event)
        if not frames:
            return message
        debug_ids = _debug_ids(event)
        sources: dict[str, Source | Exception] = {}
        for abs_path, _ in frames:
            if abs_path in sources or len(sources) >= MAX_FILES_PER_EVENT or abs_path.startswith("node:"):
                continue
            try:
                sources[abs_path] = await self._resolve(message.project_id, event, abs_path, debug_ids)
            except _MISSING as exc:
                sources[abs_path] = exc
        raw = orjson.dumps(event.get("exception")) if isinstance(event.get("exception"), dict) else None
        errors, changed = await anyio.to_thread.run_sync(self._apply, frames, sources)
        if not changed and not errors:
            return message
        if changed and raw is not None:
            _keep_raw(event, orjson.loads(raw))
        message.errors.extend(errors)
        message.payload = orjson.dumps(event)
        return message

    def _apply(self, frames: list[tuple[str, dict[str, Any]]], sources: dict[str, "Source | Exception"]
               ) -> tuple[list[dict[str, Any]], int]:
        """Rewrite frames from their sources (blocking: symbolic lookups). Return (errors, frames changed)."""
        errors: dict[tuple[str, str], dict[str, Any]] = {}
        changed = 0
        for abs_path, frame in frames:
            source = sources.get(abs_path)
            if source is None:
                continue
            if isinstance(source, Exception):
                if frame.get("in_app") is not False:  # library frames without maps are no news
                    kind = getattr(source, "kind", "js_no_source")
                    errors.setdefault((kind, abs_path), {"type": kind, "url": abs_path, "reason": str(source)[:300]})
                continue
            colno = frame.get("colno")
            if not isinstance(colno, int):
                errors.setdefault(("js_no_column", abs_path), {"type": "js_no_column", "url": abs_path})
                continue
            name = minified_name(frame.get("function"))
            try:
                token = source.sourcemap.lookup(frame["lineno"] - 1, colno - 1, name,
                                                source.minified if name else None)
            except (SymbolicError, TypeError, ValueError, OverflowError):
                token = None
            if token is None:
                errors.setdefault(("js_invalid_sourcemap_location", abs_path),
                                  {"type": "js_invalid_sourcemap_location", "url": abs_path,
                                   "row": frame["lineno"], "column": colno})
                continue
            view = source.sourcemap.get_sourceview(token.src_id) if token.src_id is not None else None
            if not apply_token(frame, token, base=source.base, map_url=source.map_url,
                               resolved_with=source.resolved_with, source_view=view,
                               context_lines=self.context_lines):
                errors.setdefault(("js_missing_sources_content", frame["abs_path"]),
                                  {"type": "js_missing_sources_content", "source": frame["abs_path"]})
            changed += 1
        self.symbolicated_frames += changed
        return list(errors.values()), changed

    def statistics(self) -> dict[str, int]:
        """Cache counters and work done, for ``/metrics``."""
        stats = {f"cache_{name}": value for name, value in self.cache.statistics().items()}
        stats["frames_symbolicated"] = self.symbolicated_frames
        if self.fetcher is not None:
            stats["fetched"] = self.fetcher.fetched
            stats["fetch_refused"] = self.fetcher.refused
        return stats

    async def aclose(self) -> None:
        """Close the fetcher's connections."""
        if self.fetcher is not None:
            await self.fetcher.aclose()


def _debug_ids(event: dict[str, Any]) -> dict[str, str]:
    """``{code_file: debug_id}`` of the event's ``sourcemap`` debug images."""
    found = {}
    meta = event.get("debug_meta")
    images = meta.get("images") if isinstance(meta, dict) else None
    for image in images if isinstance(images, list) else ():
        if isinstance(image, dict) and image.get("type") == "sourcemap" and isinstance(image.get("code_file"), str):
            debug_id = normalize_debug_id(image.get("debug_id"))
            if debug_id is not None:
                found[image["code_file"]] = debug_id
    return found


def _keep_raw(event: dict[str, Any], raw_exception: dict[str, Any]) -> None:
    """Keep the minified frames as ``raw_stacktrace``, as Sentry does."""
    values = event["exception"].get("values")
    raw_values = raw_exception.get("values")
    if not isinstance(values, list) or not isinstance(raw_values, list):
        return
    for value, raw in zip(values, raw_values):
        if isinstance(value, dict) and isinstance(raw, dict) and isinstance(raw.get("stacktrace"), dict):
            value["raw_stacktrace"] = raw["stacktrace"]
