"""Recognizes an uploaded debug information file: native objects (symbolic's Archive) or a ProGuard mapping.

Pure apart from one temporary file for ProGuard (symbolic's ProguardMapper only opens paths): bytes
in, a ``DifInfo`` out. Called in a worker thread by the dif store (``difs.py``); it blocks on parsing.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass

from symbolic import SymbolicError
from symbolic.debuginfo import Archive

from .errors import ArtifactError

__all__ = ["DifInfo", "DifObject", "parse_dif", "normalize_id", "NIL_ID"]

NIL_ID = "00000000-0000-0000-0000-000000000000"
#: A ProGuard class line: ``original.Name -> obfuscated:``. A mapping must have one to be a mapping.
_PROGUARD_CLASS = re.compile(rb"^[^\s#][^\s]* -> [^\s]+:\s*$", re.MULTILINE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(-[0-9a-f]{1,8})?$")
_HEX = re.compile(r"^[0-9a-f]{32}([0-9a-f]{1,8})?$")


def normalize_id(value: object) -> str | None:
    """Return a debug id / ProGuard uuid in its lowercase dashed form, or None if it is not one.

    Accepts the dashed form (with an optional ``-age`` suffix, as PDB ids have) and 32+ hex digits.
    """
    if not isinstance(value, str) or len(value) > 60:
        return None
    text = value.strip().lower()
    if _UUID.match(text):
        return text
    if _HEX.match(text):
        dashed = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"
        age = text[32:].lstrip("0")
        return f"{dashed}-{age}" if age else dashed
    return None


@dataclass(frozen=True, slots=True)
class DifObject:
    """One object in a debug file: its ids, architecture, format (elf, macho, pe, pdb, ... or proguard)
    and features (symtab, debug, unwind, sources)."""

    debug_id: str
    code_id: str | None
    arch: str | None
    format: str
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class DifInfo:
    """A recognized debug file: ``kind`` is ``native`` or ``proguard``; ``objects`` is never empty."""

    kind: str
    objects: tuple[DifObject, ...]


def _native(data: bytes) -> DifInfo | None:
    try:
        # symbolic borrows ``data`` without keeping it: it must stay referenced while the archive lives.
        archive = Archive.from_bytes(data)
        objects = []
        for obj in archive.iter_objects():
            debug_id = normalize_id(obj.debug_id)
            if debug_id is None or debug_id == NIL_ID:
                continue  # no id (e.g. an ELF built without a build id): nothing could ever find it
            objects.append(DifObject(debug_id, obj.code_id, obj.arch if obj.arch != "unknown" else None,
                                     obj.file_format, frozenset(obj.features)))
    except SymbolicError:
        return None
    if not objects:
        raise ArtifactError("the debug file has no object with a debug id (link with --build-id)",
                            kind="native_bad_dsym")
    return DifInfo("native", tuple(objects))


def proguard_uuid(data: bytes) -> str:
    """Return the uuid sentry-cli and Sentry compute for a ProGuard mapping (symbolic's). Blocks (a temp file).

    Raises ArtifactError (kind ``proguard_invalid_mapping``) if ``data`` is not a ProGuard mapping.
    """
    from symbolic.proguard import ProguardMapper

    if not _PROGUARD_CLASS.search(data[:1 << 20]):
        raise ArtifactError("not a ProGuard mapping: no 'class -> obfuscated:' line", kind="proguard_invalid_mapping")
    fd, path = tempfile.mkstemp(prefix="minisentry-proguard-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return str(ProguardMapper.open(path).uuid)
    except SymbolicError as exc:
        raise ArtifactError(f"invalid ProGuard mapping: {exc}", kind="proguard_invalid_mapping") from exc
    finally:
        os.unlink(path)


def parse_dif(data: bytes) -> DifInfo:
    """Recognize ``data`` as a native debug file or a ProGuard mapping. Blocks (parsing).

    Raises ArtifactError with a detail fit for the client when it is neither (or has no debug id).
    """
    if not data:
        raise ArtifactError("the debug file is empty", kind="native_bad_dsym")
    native = _native(data)
    if native is not None:
        return native
    try:
        uuid = proguard_uuid(data)
    except ArtifactError:
        raise ArtifactError("unsupported debug file: neither a native object file (ELF, Mach-O, PE, PDB, "
                            "Breakpad, WASM, source bundle) nor a ProGuard mapping", kind="native_bad_dsym") from None
    return DifInfo("proguard", (DifObject(uuid, None, None, "proguard", frozenset({"mapping"})),))
