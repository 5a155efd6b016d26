"""The artifact bundle format sentry-cli uploads (pure: bytes in, bytes out; no file system).

A bundle is a zip holding ``manifest.json`` and the files it lists::

    {"files": {"files/_/_/app.min.js": {"type": "minified_source", "url": "~/app.min.js",
                                         "headers": {"debug-id": "<uuid>", "sourcemap": "app.min.js.map"}},
               "files/_/_/app.min.js.map": {"type": "source_map", "url": "~/app.min.js.map",
                                             "headers": {"debug-id": "<uuid>"}}},
     "debug_id": "<uuid of the bundle>", "org": "...", "project": "...", "release": "..."}

:func:`parse_bundle` checks a bundle (and its limits) without decompressing more than a file's
declared size; :func:`read_member` reads one file with a limit; :func:`build_bundle` writes one.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from .errors import ArtifactError

__all__ = ["BundleFile", "Bundle", "parse_bundle", "read_member", "build_bundle", "normalize_debug_id",
           "FILE_TYPES"]

FILE_TYPES = frozenset(("minified_source", "source_map", "source", "indexed_ram_bundle"))
_MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_HEX_RE = re.compile(r"[0-9a-fA-F]{32}")


def normalize_debug_id(value: Any) -> str | None:
    """Return a debug id as a lowercase dashed UUID, or None if it is not one.

    Accepts the dashed and the plain 32-hex forms; an appendix (``-abc`` age of a native id) is
    not part of a JavaScript debug id and is refused.
    """
    if not isinstance(value, str) or len(value) > 64:
        return None
    compact = value.strip().replace("-", "")
    if not _HEX_RE.fullmatch(compact):
        return None
    return str(uuid.UUID(compact))


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file a bundle's manifest lists."""

    path: str
    url: str
    type: str
    headers: dict[str, str]
    size: int

    @property
    def debug_id(self) -> str | None:
        """The file's debug id (``debug-id`` header), normalized, if any."""
        return normalize_debug_id(self.headers.get("debug-id"))

    @property
    def sourcemap(self) -> str | None:
        """The ``sourcemap`` header (where the map of a minified file is), if any."""
        return self.headers.get("sourcemap") or self.headers.get("x-sourcemap")


@dataclass(frozen=True, slots=True)
class Bundle:
    """A checked bundle: the manifest's own fields and its files."""

    files: list[BundleFile]
    release: str | None = None
    dist: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"the bundle is not a zip file: {exc}") from exc


def read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Read one file of an open bundle, refusing more than ``limit`` bytes. Raises ArtifactError."""
    try:
        with archive.open(name) as handle:
            data = handle.read(limit + 1)
    except KeyError as exc:
        raise ArtifactError(f"the bundle has no file {name!r}") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError,
            RuntimeError) as exc:
        # RuntimeError: encrypted members; NotImplementedError: unsupported compression.
        raise ArtifactError(f"the bundle's file {name!r} cannot be read: {exc}") from exc
    if len(data) > limit:
        raise ArtifactError(f"the bundle's file {name!r} exceeds {limit} bytes", kind="fetch_too_large")
    return data


def _headers(raw: Any, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ArtifactError(f"manifest: headers of {path!r} must be an object")
    headers = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ArtifactError(f"manifest: header {key!r} of {path!r} must be a string")
        headers[key.lower()] = value
    return headers


def parse_bundle(data: bytes, *, max_files: int, max_file_bytes: int) -> Bundle:
    """Check a bundle's zip and manifest. Raises ArtifactError saying what is wrong.

    Every listed file must exist in the zip, declare at most ``max_file_bytes`` and have a known
    ``type`` and a ``url``; at most ``max_files`` files. The file contents are not read here.
    """
    with _open_zip(data) as archive:
        try:
            infos = {info.filename: info for info in archive.infolist()}
        except (zipfile.BadZipFile, ValueError) as exc:
            raise ArtifactError(f"the bundle's zip directory is broken: {exc}") from exc
        if len(infos) > max_files + 1:
            raise ArtifactError(f"the bundle holds more than {max_files} files")
        if _MANIFEST not in infos:
            raise ArtifactError("the bundle has no manifest.json")
        try:
            manifest = orjson.loads(read_member(archive, _MANIFEST, _MAX_MANIFEST_BYTES))
        except orjson.JSONDecodeError as exc:
            raise ArtifactError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError("manifest.json must be an object with a 'files' object")
    files = []
    for path, entry in manifest["files"].items():
        if not isinstance(entry, dict):
            raise ArtifactError(f"manifest: entry {path!r} must be an object")
        info = infos.get(path)
        if info is None:
            raise ArtifactError(f"manifest lists {path!r}, which is not in the bundle")
        if info.file_size > max_file_bytes:
            raise ArtifactError(f"the bundle's file {path!r} exceeds {max_file_bytes} bytes", kind="fetch_too_large")
        kind, url = entry.get("type"), entry.get("url")
        if kind not in FILE_TYPES:
            raise ArtifactError(f"manifest: {path!r} has an unknown type {kind!r}")
        if not isinstance(url, str) or not url or len(url) > 4096:
            raise ArtifactError(f"manifest: {path!r} needs a 'url' string")
        files.append(BundleFile(path, url, kind, _headers(entry.get("headers"), path), info.file_size))
    release, dist = manifest.get("release"), manifest.get("dist")
    return Bundle(files, release if isinstance(release, str) and release else None,
                  dist if isinstance(dist, str) and dist else None,
                  {k: v for k, v in manifest.items() if k not in ("files", "release", "dist")})


def build_bundle(files: Iterable[tuple[str, str, dict[str, str], bytes]], **manifest: Any) -> bytes:
    """Write a bundle from ``(url, type, headers, bytes)``; ``manifest`` adds release, dist, ... fields."""
    buffer = io.BytesIO()
    entries: dict[str, Any] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (url, kind, headers, data) in enumerate(files):
            name = url.split("://", 1)[-1].lstrip("~/").replace("..", "_") or "file"
            path = f"files/{index}/{name}"
            archive.writestr(path, data)
            entries[path] = {"type": kind, "url": url, "headers": headers}
        archive.writestr(_MANIFEST, orjson.dumps({"files": entries, **{k: v for k, v in manifest.items()
                                                                        if v is not None}}))
    return buffer.getvalue()
