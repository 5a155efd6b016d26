"""The upload routes ``sentry-cli sourcemaps upload`` uses, unmodified (bearer tokens of ``[api] tokens``).

Routes (trailing slash optional)::

    GET  /api/0/organizations/<org>/chunk-upload/                 upload options (chunk size, limits, accept)
    POST /api/0/organizations/<org>/chunk-upload/                 multipart chunks: ``file`` or ``file_gzip``
                                                                  parts named by the sha1 of their bytes
    POST /api/0/organizations/<org>/artifactbundle/assemble/      {"checksum", "chunks", "projects",
                                                                   "version"?, "dist"?} -> state
    POST /api/0/projects/<org>/<project>/files/difs/assemble/      debug files and ProGuard mappings
                                                                  (``sentry-cli debug-files upload``,
                                                                  ``proguard upload``; see difapi.py)

The flow sentry-cli follows: read the options, ask ``assemble`` (``not_found`` with
``missingChunks``), upload the missing chunks, ask ``assemble`` again until ``ok``. Assembling
happens within the request (in a worker thread), so the answer is ``ok`` or an error, never a
state to poll. ``<org>`` must be ``[sourcemaps] organization`` (404 otherwise).
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import orjson

from .api_auth import check_bearer
from .artifacts import ArtifactStore
from .difapi import DIF_ASSEMBLE_RE, assemble_difs
from .difs import DifStore
from .chunks import SHA1_RE, gunzip_limited
from .config import Config
from .errors import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge
from .httpserver import Request, Response
from .jsonbody import json_object
from .multipart import MultipartLimits, parse_multipart

__all__ = ["UploadApi", "ACCEPT"]

_CHUNK_RE = re.compile(r"^/api/0/organizations/([\w.-]+)/chunk-upload/?$")
_ASSEMBLE_RE = re.compile(r"^/api/0/organizations/([\w.-]+)/artifactbundle/assemble/?$")
#: What the chunk upload can be used for: JavaScript bundles, native debug files, ProGuard mappings.
ACCEPT = ["artifact_bundles", "sources", "debug_files", "proguard"]
_MAX_PROJECTS = 100
_MAX_NAME = 200


class UploadApi:
    """Answers the upload routes from an opened ArtifactStore; store calls run in worker threads."""

    def __init__(self, config: Config, artifacts: ArtifactStore, store: Any, difs: DifStore | None = None) -> None:
        self.config = config
        self.settings = config.sourcemaps
        self.artifacts = artifacts
        self.difs = difs
        self.store = store
        self.tokens = [token.encode() for token in config.api.tokens]

    def matches(self, path: str) -> bool:
        """Return whether ``path`` is one of the upload routes."""
        return bool(_CHUNK_RE.match(path) or _ASSEMBLE_RE.match(path)
                    or (self.difs is not None and DIF_ASSEMBLE_RE.match(path)))

    def body_limit(self, request: Request) -> int:
        """The largest body a route takes: chunk uploads get ``max_request_bytes``."""
        if _CHUNK_RE.match(request.path):
            return self.settings.max_request_bytes
        return self.config.limits.max_api_body_bytes

    async def handle(self, request: Request) -> Response:
        """Answer one upload request. Raises RequestError (400, 401, 403, 404, 405, 413)."""
        check_bearer(request, self.tokens)
        dif_match = DIF_ASSEMBLE_RE.match(request.path) if self.difs is not None else None
        if dif_match is not None:
            if dif_match.group(1) != self.settings.organization:
                raise NotFound(f"no organization {dif_match.group(1)!r}")
            if request.method != "POST":
                raise MethodNotAllowed(f"{request.method} is not allowed here")
            return Response(200, orjson.dumps(await assemble_difs(self.difs, self.store, dif_match.group(2),
                                                                  request.body)))
        match = _CHUNK_RE.match(request.path) or _ASSEMBLE_RE.match(request.path)
        if match is None:
            raise NotFound(f"no route for {request.path}")
        if match.group(1) != self.settings.organization:
            raise NotFound(f"no organization {match.group(1)!r}")
        if _CHUNK_RE.match(request.path):
            if request.method == "GET":
                return Response(200, orjson.dumps(self._options(request)))
            if request.method == "POST":
                await self._chunks(request)
                return Response(200, b"{}")
        elif request.method == "POST":
            return Response(200, orjson.dumps(await self._assemble(request)))
        raise MethodNotAllowed(f"{request.method} is not allowed here")

    def _options(self, request: Request) -> dict[str, Any]:
        base = self.config.server.public_url.rstrip("/")
        if not base:
            host = request.headers.get("host", f"{self.config.server.host}:{self.config.server.port}")
            base = f"http://{host}"
        settings = self.settings
        return {
            "url": f"{base}/api/0/organizations/{settings.organization}/chunk-upload/",
            "chunkSize": settings.chunk_size,
            "chunksPerRequest": settings.chunks_per_request,
            "maxFileSize": max(settings.max_bundle_bytes, self.config.native.max_file_bytes),
            "maxRequestSize": settings.max_request_bytes,
            "concurrency": 1,
            "hashAlgorithm": "sha1",
            "compression": ["gzip"],
            "accept": ACCEPT,
        }

    async def _chunks(self, request: Request) -> None:
        settings = self.settings
        # Other fields are allowed (and ignored), so the parser's part bound leaves room for a few.
        limits = MultipartLimits(max_parts=settings.chunks_per_request + 16, max_file_bytes=settings.max_request_bytes,
                                 max_field_bytes=64 * 1024)
        parts = parse_multipart(request.body, request.headers.get("content-type"), limits)
        chunks: list[tuple[str, bytes]] = []
        total = 0
        for part in parts:
            if part.name not in ("file", "file_gzip"):
                continue  # Sentry ignores other fields too
            if part.filename is None:
                raise BadRequest(f"chunk part {part.name!r} has no filename (its sha1)")
            data = gunzip_limited(part.data, settings.chunk_size) if part.name == "file_gzip" else part.data
            if len(data) > settings.chunk_size:
                raise PayloadTooLarge(f"chunk {part.filename[:40]} exceeds chunkSize ({settings.chunk_size} bytes)")
            total += len(data)
            if total > settings.max_request_bytes:
                raise PayloadTooLarge(f"chunks exceed maxRequestSize ({settings.max_request_bytes} bytes)")
            chunks.append((part.filename, data))
        if len(chunks) > settings.chunks_per_request:
            raise BadRequest(f"more than chunksPerRequest ({settings.chunks_per_request}) chunks")
        if chunks:
            await anyio.to_thread.run_sync(self.artifacts.chunks.put_many, chunks)

    async def _assemble(self, request: Request) -> dict[str, Any]:
        body = json_object(request.body)
        unknown = set(body) - {"checksum", "chunks", "projects", "version", "dist"}
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(sorted(unknown))[:200]}")
        checksum, chunks, projects = body.get("checksum"), body.get("chunks"), body.get("projects")
        if not isinstance(checksum, str) or not SHA1_RE.fullmatch(checksum):
            raise BadRequest("checksum must be a lowercase sha1")
        if not isinstance(chunks, list) or not all(isinstance(c, str) and SHA1_RE.fullmatch(c) for c in chunks):
            raise BadRequest("chunks must be a list of lowercase sha1s")
        if not isinstance(projects, list) or not projects or len(projects) > _MAX_PROJECTS \
                or not all(isinstance(p, str) for p in projects):
            raise BadRequest("projects must name at least one project")
        release, dist = body.get("version"), body.get("dist")
        for name, value in (("version", release), ("dist", dist)):
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_NAME):
                raise BadRequest(f"{name} must be a string of at most {_MAX_NAME} characters")
        project_ids = []
        for slug in dict.fromkeys(projects):
            try:
                project_ids.append((await anyio.to_thread.run_sync(self.store.project_by_slug, slug))["id"])
            except NotFound as exc:
                raise BadRequest(f"unknown project {slug[:60]!r}") from exc
        return await anyio.to_thread.run_sync(
            lambda: self.artifacts.assemble(checksum, chunks, project_ids, release or None, dist or None))
