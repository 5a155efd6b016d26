"""The debug-file assemble route ``sentry-cli debug-files upload`` and ``sentry-cli proguard upload`` use.

::

    POST /api/0/projects/<org>/<project>/files/difs/assemble/
         {"<sha1>": {"name": str, "debug_id": str?, "chunks": [sha1, ...]}, ...}
      -> {"<sha1>": {"state": "ok"|"not_found"|"error", "missingChunks": [...], "detail": str?, "dif"?}}

The chunks travel through the shared chunk-upload route (uploadapi.py). Each file is answered on
its own: a file that is not a debug file, too large, or whose chunks do not add up is ``error``
with a ``detail`` (as Sentry answers), while the others may be ``ok``. Assembling happens within
the request (worker thread), so ``created``/``assembling`` are never answered. A malformed body is
400, an unknown organization or project 404, a missing or wrong token 401/403 (uploadapi.py).
"""

from __future__ import annotations

import re
from typing import Any

import anyio

from .chunks import SHA1_RE
from .difs import DifStore
from .jsonbody import json_object
from .errors import BadRequest, NotFound

__all__ = ["DIF_ASSEMBLE_RE", "parse_assemble_body", "assemble_difs", "MAX_FILES_PER_REQUEST"]

DIF_ASSEMBLE_RE = re.compile(r"^/api/0/projects/([\w.-]+)/([\w.-]+)/files/difs/assemble/?$")
#: Files named in one assemble request (sentry-cli sends one request for all files it found).
MAX_FILES_PER_REQUEST = 1000
_MAX_CHUNKS = 100_000
_MAX_NAME = 1000


def parse_assemble_body(body: bytes) -> dict[str, tuple[str, list[str]]]:
    """Validate an assemble body; return ``{checksum: (name, chunks)}``. Pure.

    ``debug_id`` is accepted and ignored: the id is read from the file itself. Raises BadRequest
    naming the offending field.
    """
    data = json_object(body, "body (a JSON object of checksum -> {name, chunks})")
    if len(data) > MAX_FILES_PER_REQUEST:
        raise BadRequest(f"more than {MAX_FILES_PER_REQUEST} files in one request")
    files: dict[str, tuple[str, list[str]]] = {}
    for checksum, item in data.items():
        where = f"file {checksum[:45]!r}"
        if not SHA1_RE.fullmatch(checksum):
            raise BadRequest(f"{where}: the key must be the lowercase sha1 of the file")
        if not isinstance(item, dict):
            raise BadRequest(f"{where}: must be an object with name and chunks")
        unknown = set(item) - {"name", "debug_id", "chunks"}
        if unknown:
            raise BadRequest(f"{where}: unknown field(s) {', '.join(sorted(unknown))[:200]}")
        name, chunks, debug_id = item.get("name"), item.get("chunks"), item.get("debug_id")
        if not isinstance(name, str) or not name or len(name) > _MAX_NAME:
            raise BadRequest(f"{where}: name must be a string of 1 to {_MAX_NAME} characters")
        if debug_id is not None and not isinstance(debug_id, str):
            raise BadRequest(f"{where}: debug_id must be a string")
        if not isinstance(chunks, list) or len(chunks) > _MAX_CHUNKS \
                or not all(isinstance(c, str) and SHA1_RE.fullmatch(c) for c in chunks):
            raise BadRequest(f"{where}: chunks must be a list of lowercase sha1s")
        files[checksum] = (name, chunks)
    return files


async def assemble_difs(difs: DifStore, store: Any, project_slug: str, body: bytes) -> dict[str, Any]:
    """Answer one assemble request: each file's state. Store calls run in worker threads.

    Raises BadRequest for a malformed body, NotFound for an unknown project, StorageError on I/O failure.
    """
    files = parse_assemble_body(body)
    try:
        project = await anyio.to_thread.run_sync(store.project_by_slug, project_slug)
    except NotFound as exc:
        raise NotFound(f"no project {project_slug[:60]!r}") from exc
    answers: dict[str, Any] = {}
    for checksum, (name, chunks) in files.items():
        answers[checksum] = await anyio.to_thread.run_sync(difs.assemble, checksum, name, chunks, project["id"])
    return answers
