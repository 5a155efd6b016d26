"""A strict ``multipart/form-data`` parser for chunk uploads (pure, no I/O).

sentry-cli sends each chunk as a part ``name="file"`` or ``name="file_gzip"`` whose ``filename`` is
the chunk's sha1. The whole body is already in memory and bounded by the route's body limit, so the
parser works on bytes and never copies more than the parts themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BadRequest

__all__ = ["Part", "boundary_of", "parse_multipart"]

_BOUNDARY_RE = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))', re.IGNORECASE)
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')
#: More parts than this is refused before anything is stored (a form field costs little to send).
MAX_PARTS = 1024
MAX_PART_HEADER_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Part:
    """One form field: its ``name``, its ``filename`` (or None) and its bytes."""

    name: str
    filename: str | None
    data: bytes


def boundary_of(content_type: str) -> bytes:
    """Return the boundary of a ``multipart/form-data`` Content-Type. Raises BadRequest."""
    media, _, _ = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        raise BadRequest("expected Content-Type multipart/form-data")
    match = _BOUNDARY_RE.search(content_type)
    if match is None:
        raise BadRequest("multipart/form-data without a boundary")
    boundary = match.group(1) or match.group(2)
    if not boundary.isascii():
        raise BadRequest("multipart boundary must be ASCII")
    return boundary.encode("ascii")


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise BadRequest("malformed multipart part header")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


def _disposition(value: str) -> tuple[str, str | None]:
    kind, _, _ = value.partition(";")
    if kind.strip().lower() != "form-data":
        raise BadRequest("multipart part is not form-data")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM_RE.finditer(value)}
    name = params.get("name")
    if not name:
        raise BadRequest("multipart part without a name")
    return name, params.get("filename")


def parse_multipart(body: bytes, boundary: bytes) -> list[Part]:
    """Split a form body into parts. Raises BadRequest for anything malformed (never another error).

    Preamble and epilogue are ignored, as RFC 2046 says; the closing delimiter is required.
    """
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0 or (start > 0 and body[start - 2:start] != b"\r\n"):
        raise BadRequest("multipart body does not start with its boundary")
    parts: list[Part] = []
    position = start + len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", position):
            return parts  # the closing delimiter
        # Transport padding may follow a delimiter before its CRLF.
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise BadRequest("malformed multipart delimiter line")
        header_end = body.find(b"\r\n\r\n", line_end + 2)
        if header_end < 0 or header_end - line_end > MAX_PART_HEADER_BYTES:
            raise BadRequest("multipart part headers are missing or too long")
        headers = _headers(body[line_end + 2:header_end]) if header_end > line_end + 2 else {}
        if "content-disposition" not in headers:
            raise BadRequest("multipart part without Content-Disposition")
        name, filename = _disposition(headers["content-disposition"])
        data_end = body.find(separator, header_end + 4)
        if data_end < 0:
            raise BadRequest("multipart body ends without its closing boundary")
        parts.append(Part(name, filename, body[header_end + 4:data_end]))
        if len(parts) > MAX_PARTS:
            raise BadRequest(f"more than {MAX_PARTS} multipart parts")
        position = data_end + len(separator)
