"""The ProGuard (JVM) symbolicator: deobfuscates Java frames and exception types with uploaded mappings.

For ``java`` events whose ``debug_meta.images`` hold entries of type ``proguard`` (their ``uuid`` is
the one ``sentry-cli proguard upload`` computes), each mapping is loaded from the dif store with
symbolic's ``ProguardMapper`` (in a worker thread, kept in the bounded ``LoadingCache``; missing
files remembered for ``negative_cache_seconds``). Each frame's ``module`` (class), ``function``
(method) and ``lineno`` are remapped with ``remap_frame``: inlined methods become one frame each
(outermost first, frames being oldest first); a frame without a line is remapped by class and
method only. Exception ``module``/``type`` are remapped as a class. The obfuscated frames are kept
as ``raw_stacktrace``.

Failures become ``errors`` entries: ``proguard_missing_mapping`` (one per uuid not uploaded or
unreadable), ``proguard_missing_lineno`` (a frame without a line). The event always continues.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from symbolic import SymbolicError
from symbolic.proguard import ProguardMapper

from .difparse import normalize_id
from .difs import DifRef, DifStore
from .errors import ArtifactError, StorageError
from .messages import EventMessage
from .nativesymbolicate import stacktraces
from .smcache import LoadingCache

__all__ = ["ProguardSymbolicator"]

_MISSING = (ArtifactError, StorageError)
#: Mappings named by one event; more are ignored (an event names one or two).
MAX_MAPPINGS_PER_EVENT = 20


def _uuids(event: dict[str, Any]) -> list[str]:
    meta = event.get("debug_meta")
    images = meta.get("images") if isinstance(meta, dict) else None
    found = []
    for image in images if isinstance(images, list) else ():
        if isinstance(image, dict) and image.get("type") == "proguard":
            uuid = normalize_id(image.get("uuid") or image.get("debug_id"))
            if uuid is not None and uuid not in found:
                found.append(uuid)
    return found[:MAX_MAPPINGS_PER_EVENT]


def _load_mapper(ref: DifRef) -> tuple[Any, int]:
    """Open a stored mapping (blocking). Raises ArtifactError (proguard_missing_mapping) if unusable."""
    try:
        size = ref.path.stat().st_size
        return ProguardMapper.open(str(ref.path)), size
    except FileNotFoundError as exc:
        raise ArtifactError(f"mapping {ref.debug_id} is gone", kind="proguard_missing_mapping") from exc
    except (SymbolicError, OSError) as exc:
        raise ArtifactError(f"mapping {ref.debug_id} cannot be read: {exc}", kind="proguard_missing_mapping") from exc


class ProguardSymbolicator:
    """Symbolicator ``proguard`` bound to a dif store and a cache. See the module docstring."""

    name = "proguard"

    def __init__(self, difs: DifStore, *, cache_bytes: int, negative_ttl: float, max_frames: int) -> None:
        self.difs = difs
        self.max_frames = max_frames
        self.cache = LoadingCache(max_bytes=cache_bytes, negative_ttl=negative_ttl, negative=_MISSING)
        self.remapped_frames = 0

    async def _mapper(self, project_id: int, uuid: str) -> Any:
        def find() -> tuple[DifRef, int]:
            ref = self.difs.find(project_id, uuid, proguard=True)
            if ref is None:
                raise ArtifactError(f"no ProGuard mapping uploaded with uuid {uuid}", kind="proguard_missing_mapping")
            return ref, 256

        ref = await self.cache.get(("dif", project_id, uuid), find, keep=False)
        return await self.cache.get(("mapper", ref.checksum), lambda: _load_mapper(ref))

    def wants(self, message: EventMessage) -> bool:
        """Whether the event may carry ProGuard debug images (a byte test). Never raises."""
        return b'"proguard"' in message.payload

    async def symbolicate(self, message: EventMessage) -> EventMessage:
        """Deobfuscate a java event in place; other events pass untouched. Never raises for a bad event."""
        if not self.wants(message):
            return message  # cheap test before parsing
        try:
            event = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return message
        if not isinstance(event, dict) or event.get("platform") != "java":
            return message
        mappers, errors = [], []
        for uuid in _uuids(event):
            try:
                mappers.append(await self._mapper(message.project_id, uuid))
            except _MISSING as exc:
                errors.append({"type": "proguard_missing_mapping", "mapping_uuid": uuid, "reason": str(exc)[:300]})
        if mappers:
            await anyio.to_thread.run_sync(self._apply, event, mappers, errors)
        if mappers or errors:
            message.errors.extend(errors)
            message.payload = orjson.dumps(event)
        return message

    def _apply(self, event: dict[str, Any], mappers: list[Any], errors: list[dict[str, Any]]) -> None:
        """Remap every frame and exception type with the first mapper that knows it (blocking)."""
        budget = self.max_frames
        missing_line = False
        for stacktrace, owner in stacktraces(event):
            frames = stacktrace.get("frames")
            if not isinstance(frames, list):
                continue
            original = [dict(frame) if isinstance(frame, dict) else frame for frame in frames]
            new_frames, changed = [], 0
            for frame in frames:
                remapped = None
                if budget > 0 and isinstance(frame, dict):
                    budget -= 1
                    remapped = _remap_frame(frame, mappers)
                    # Without a line an inlined method cannot be told apart: remapped by name only.
                    if remapped and not isinstance(frame.get("lineno"), int):
                        missing_line = True
                if remapped:
                    new_frames.extend(remapped)
                    changed += 1
                else:
                    new_frames.append(frame)
            if changed:
                if owner is not None and "raw_stacktrace" not in owner:
                    owner["raw_stacktrace"] = {**stacktrace, "frames": original}
                stacktrace["frames"] = new_frames
                self.remapped_frames += changed
        exceptions = event.get("exception")
        for value in exceptions.get("values") or () if isinstance(exceptions, dict) else ():
            if isinstance(value, dict) and isinstance(value.get("type"), str):
                module = value.get("module") if isinstance(value.get("module"), str) else None
                full = f"{module}.{value['type']}" if module else value["type"]
                name = _first(mappers, lambda mapper: mapper.remap_class(full))
                if name:
                    value["module"], _, value["type"] = name.rpartition(".")
                    if not value["module"]:
                        value.pop("module")
        if missing_line:
            errors.append({"type": "proguard_missing_lineno"})


def _first(mappers: list[Any], call: Any) -> Any:
    for mapper in mappers:
        try:
            result = call(mapper)
        except (SymbolicError, ValueError):
            result = None
        if result:
            return result
    return None


def _remap_frame(frame: dict[str, Any], mappers: list[Any]) -> list[dict[str, Any]] | None:
    """The deobfuscated frames of one frame (outermost first), or None when no mapping knows it."""
    module, function, lineno = frame.get("module"), frame.get("function"), frame.get("lineno")
    if not isinstance(module, str) or not isinstance(function, str) or not module or not function:
        return None
    if isinstance(lineno, int) and 0 < lineno < (1 << 31):
        remapped = _first(mappers, lambda mapper: mapper.remap_frame(module, function, lineno))
        if remapped:
            return [_java_frame(frame, item.class_name, item.method, item.line or None, item.file)
                    for item in reversed(remapped)]
    method = _first(mappers, lambda mapper: mapper.remap_method(module, function))
    if method:
        return [_java_frame(frame, method[0], method[1], None, None)]
    name = _first(mappers, lambda mapper: mapper.remap_class(module))
    return [_java_frame(frame, name, function, None, None)] if name else None


def _java_frame(frame: dict[str, Any], class_name: str, method: str, line: int | None, file: str | None) -> dict:
    out = dict(frame)
    out["module"], out["function"] = class_name, method
    if line:
        out["lineno"] = line
    else:
        out.pop("lineno", None)
    # The obfuscated file name (often "SourceFile") is meaningless after remapping.
    out["filename"] = file or f"{class_name.rpartition('.')[2].split('$')[0]}.java"
    out.pop("abs_path", None)
    out["data"] = {**(out.get("data") if isinstance(out.get("data"), dict) else {}), "deobfuscated": True}
    return out
