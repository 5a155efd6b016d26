"""The native symbolicator: maps frames' ``instruction_addr`` to function, file and line with uploaded debug files.

For each frame with an ``instruction_addr``, the event's ``debug_meta.images`` entry containing the
address is found (nativeframes.py), its debug file is looked up by debug id (else code id) in the
dif store, and a symbol cache is built from it with symbolic (``SymCache``) in a worker thread and
kept in the bounded ``LoadingCache`` (by the debug file's size; missing and broken files are
remembered for ``negative_cache_seconds``). The address, relative to the image and moved back into
the call for caller frames, is looked up; inlined functions become one frame each (outermost
first, as frames are ordered oldest first). The unsymbolicated frames are kept as ``raw_stacktrace``.

Failures become ``errors`` entries, one per image and type: ``native_missing_dsym`` (no debug file
uploaded), ``native_bad_dsym`` (it cannot be read), ``native_missing_symbol`` (no symbol at the
address), ``native_unknown_image`` (the address is in no image), ``native_too_many_frames``.
The event always continues.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

import anyio
import orjson
from symbolic import SymbolicError
from symbolic.debuginfo import Archive
from symbolic.symcache import SymCache, find_best_instruction

from .difs import DifRef, DifStore
from .diskcache import DiskCache
from .errors import ArtifactError, StorageError
from .messages import EventMessage
from .nativeframes import Image, find_image, images_of, parse_addr, should_adjust
from .smcache import LoadingCache

__all__ = ["NativeSymbolicator", "stacktraces"]

log = logging.getLogger("minisentry.symbolicate.native")

_MISSING = (ArtifactError, StorageError)
#: What symbolic reports as the symbol address of an inlined function.
_NO_SYM_ADDR = (1 << 32) - 1


def stacktraces(event: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Yield ``(stacktrace, owner)`` of exceptions, threads and the event; owner holds ``raw_stacktrace``."""
    for name in ("exception", "threads"):
        container = event.get(name)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else ():
            if isinstance(value, dict) and isinstance(value.get("stacktrace"), dict):
                yield value["stacktrace"], value
    if isinstance(event.get("stacktrace"), dict):
        yield event["stacktrace"], None


def _load_symcache(ref: DifRef, disk: DiskCache | None = None) -> tuple[Any, int]:
    """Read a symbol cache from ``disk``, or build it from the stored debug file and keep it there.

    Blocks. Raises ArtifactError (native_bad_dsym) for a debug file symbolic cannot use.
    """
    key = f"{ref.checksum}-{ref.debug_id}.symcache"
    if disk is not None:
        path = disk.get(key)
        if path is not None:
            try:
                symcache = SymCache.open(str(path))
                return (symcache, symcache.arch), path.stat().st_size
            except (SymbolicError, OSError) as exc:  # evicted meanwhile, or from another symbolic: rebuild
                log.info("rebuilding the symbol cache of %s: %s", ref.checksum, exc)
    try:
        data = ref.path.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"debug file {ref.checksum} is gone", kind="native_missing_dsym") from exc
    except OSError as exc:
        raise StorageError(f"debug file {ref.checksum} cannot be read: {exc}") from exc
    try:
        archive = Archive.from_bytes(data)  # ``data`` stays referenced until the cache is built
        obj = archive.get_object(debug_id=ref.debug_id)
        symcache = obj.make_symcache()
    except (SymbolicError, LookupError) as exc:
        raise ArtifactError(f"debug file {ref.checksum} cannot be used: {exc}", kind="native_bad_dsym") from exc
    if disk is not None:
        disk.put(key, symcache.dump_into)
    return (symcache, obj.arch), len(data)


class NativeSymbolicator:
    """Symbolicator ``native`` bound to a dif store and a cache. See the module docstring."""

    name = "native"

    def __init__(self, difs: DifStore, *, cache_bytes: int, negative_ttl: float, max_frames: int,
                 disk: DiskCache | None = None) -> None:
        self.difs = difs
        #: Built symbol caches on disk (``[native] disk_cache_bytes``), read back after a restart.
        self.disk = disk
        self.max_frames = max_frames
        self.cache = LoadingCache(max_bytes=cache_bytes, negative_ttl=negative_ttl, negative=_MISSING)
        self.symbolicated_frames = 0

    async def _symcache(self, project_id: int, image: Image) -> tuple[Any, str]:
        def find() -> tuple[DifRef, int]:
            ref = self.difs.find(project_id, image.debug_id, image.code_id)
            if ref is None:
                raise ArtifactError(f"no debug file uploaded for {image.debug_id or image.code_id}",
                                    kind="native_missing_dsym")
            return ref, 256

        # A later upload may add the file: found refs are not kept, misses are (for a while).
        ref = await self.cache.get(("dif", project_id, image.debug_id, image.code_id), find, keep=False)
        # Stored files are content-addressed: a built cache never goes stale.
        return await self.cache.get(("symcache", ref.checksum, ref.debug_id), lambda: _load_symcache(ref, self.disk))

    def wants(self, message: EventMessage) -> bool:
        """Whether the event may have native frames and debug images (a byte test). Never raises."""
        return b"instruction_addr" in message.payload and b"debug_meta" in message.payload

    async def symbolicate(self, message: EventMessage) -> EventMessage:
        """Symbolicate an event's native frames in place; events without native images pass untouched.

        Never raises for a bad event or a missing debug file: those become ``errors`` entries.
        """
        if not self.wants(message):
            return message  # cheap test before parsing
        try:
            event = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return message  # processing refuses it with the proper outcome
        if not isinstance(event, dict):
            return message
        images = images_of(event)
        if not images:
            return message
        caches: dict[int, tuple[Any, str] | Exception] = {}
        errors: dict[tuple[str, int], dict[str, Any]] = {}
        work: list[tuple[dict, dict | None, list]] = []
        budget = self.max_frames
        for stacktrace, owner in stacktraces(event):
            frames = stacktrace.get("frames")
            if not isinstance(frames, list):
                continue
            planned = []
            for position, frame in enumerate(frames):
                addr = parse_addr(frame.get("instruction_addr")) if isinstance(frame, dict) else None
                if addr is None:
                    continue
                if budget <= 0:
                    errors.setdefault(("native_too_many_frames", -1), {"type": "native_too_many_frames",
                                                                       "limit": self.max_frames})
                    break
                budget -= 1
                found = find_image(images, addr, frame.get("addr_mode"))
                if found is None:
                    errors.setdefault(("native_unknown_image", addr), {"type": "native_unknown_image",
                                                                       "instruction_addr": hex(addr)})
                    continue
                image, relative = found
                if image.index not in caches:
                    try:
                        caches[image.index] = await self._symcache(message.project_id, image)
                    except _MISSING as exc:
                        caches[image.index] = exc
                cache = caches[image.index]
                if isinstance(cache, Exception):
                    kind = getattr(cache, "kind", "native_bad_dsym")
                    errors.setdefault((kind, image.index), {"type": kind, "image_path": image.code_file,
                                                            "image_uuid": image.debug_id, "reason": str(cache)[:300]})
                    continue
                crashing = position == len(frames) - 1
                planned.append((position, frame, image, relative, should_adjust(frame, stacktrace, crashing)))
            if planned:
                work.append((stacktrace, owner, planned))
        if not work and not errors:
            return message
        changed = await anyio.to_thread.run_sync(self._apply, work, caches, errors)
        message.errors.extend(errors.values())
        if changed or errors:
            message.payload = orjson.dumps(event)
        return message

    def _apply(self, work: list, caches: dict, errors: dict) -> int:
        """Look the planned frames up and rewrite their stack traces (blocking). Return frames changed."""
        changed = 0
        for stacktrace, owner, planned in work:
            frames = stacktrace["frames"]
            replaced: dict[int, list[dict[str, Any]]] = {}
            for position, frame, image, relative, adjust in planned:
                symcache, arch = caches[image.index]
                lookup = find_best_instruction(relative, arch, crashing_frame=False) if adjust else relative
                try:
                    locations = symcache.lookup(lookup)
                except (SymbolicError, OverflowError):
                    locations = []
                if image.size and relative >= image.size:
                    locations = []
                if not locations:
                    errors.setdefault(("native_missing_symbol", image.index), {
                        "type": "native_missing_symbol", "image_path": image.code_file,
                        "image_uuid": image.debug_id, "instruction_addr": frame.get("instruction_addr")})
                    continue
                replaced[position] = [_frame(frame, image, location) for location in reversed(locations)]
            if not replaced:
                continue
            if owner is not None and "raw_stacktrace" not in owner:
                owner["raw_stacktrace"] = {**stacktrace, "frames": [dict(frame) for frame in frames]}
            new_frames = []
            for position, frame in enumerate(frames):
                new_frames.extend(replaced.get(position, (frame,)))
            stacktrace["frames"] = new_frames
            changed += len(replaced)
        self.symbolicated_frames += changed
        return changed

    def statistics(self) -> dict[str, int]:
        """Cache counters and work done, for ``/metrics``."""
        stats = {f"cache_{name}": value for name, value in self.cache.statistics().items()}
        stats["frames_symbolicated"] = self.symbolicated_frames
        if self.disk is not None:
            stats.update(self.disk.statistics())
        return stats


def _frame(frame: dict[str, Any], image: Image, location: Any) -> dict[str, Any]:
    """One symbolicated frame from a symcache location (the original frame's other fields kept)."""
    out = dict(frame)
    out["function"] = location.symbol
    out["symbol"] = location.symbol
    if location.sym_addr != _NO_SYM_ADDR:  # inlined functions have no address of their own
        out["sym_addr"] = hex(image.addr + location.sym_addr)
    else:
        out.pop("sym_addr", None)
    if location.full_path:
        out["abs_path"] = location.full_path
        out["filename"] = os.path.basename(location.full_path)
    if location.line:
        out["lineno"] = location.line
    if image.code_file:
        out["package"] = image.code_file
    out.setdefault("data", {})
    if isinstance(out["data"], dict):
        out["data"] = {**out["data"], "symbolicator_status": "symbolicated"}
    return out
