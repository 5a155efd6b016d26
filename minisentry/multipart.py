"""A bounded, incremental ``multipart/form-data`` parser (RFC 7578), for minidump uploads.

:class:`MultipartParser` takes the body in chunks of any size (:meth:`~MultipartParser.feed`)
and keeps at most one delimiter's length of unparsed bytes plus one part's headers in its buffer;
part data goes straight into that part. Everything is bounded: the number of parts, each part's
header block, the bytes of file parts together and of plain form fields together. Anything
malformed or over a bound raises :class:`~minisentry.errors.InvalidMultipart` (400) or
:class:`~minisentry.errors.PayloadTooLarge` (413) with a message saying what and where.

Accepted: a preamble before the first delimiter and an epilogue after the last one (ignored),
``\\r\\n`` line ends, header names in any case, quoted or bare ``Content-Disposition`` parameters.
Not supported (refused or ignored, as noted): nested multipart (kept as a part's bytes),
``filename*`` (RFC 5987, ignored), ``Content-Transfer-Encoding`` (ignored, RFC 7578 deprecates it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidMultipart, PayloadTooLarge

__all__ = ["Part", "MultipartLimits", "MultipartParser", "boundary_of", "parse_multipart"]

_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True, slots=True)
class Part:
    """One part: its form field ``name``, ``filename`` (None for a plain field), content type and bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartLimits:
    """Bounds of one body: parts, one part's header block, file bytes and plain-field bytes (each summed)."""

    max_parts: int = 128
    max_header_bytes: int = 8192
    max_file_bytes: int = 100 * 1024 * 1024
    max_field_bytes: int = 1024 * 1024


def boundary_of(content_type: str | None) -> str:
    """Return the boundary of a ``multipart/form-data`` Content-Type. Raises InvalidMultipart."""
    if not content_type:
        raise InvalidMultipart("missing Content-Type: expected multipart/form-data with a boundary")
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidMultipart(f"Content-Type must be multipart/form-data, got {kind.strip()[:100]!r}")
    for key, value in _PARAM_RE.findall(";" + params):
        if key.lower() == "boundary":
            boundary = _unquote(value)
            if not _BOUNDARY_RE.fullmatch(boundary):
                raise InvalidMultipart("multipart boundary must be 1-70 characters of RFC 2046's set, "
                                       f"got {boundary[:100]!r}")
            return boundary
    raise InvalidMultipart("multipart/form-data Content-Type has no boundary parameter")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


class MultipartParser:
    """Parse one multipart body fed in chunks; :meth:`finish` returns the parts. Never blocks.

    Raises InvalidMultipart for malformed framing or headers and PayloadTooLarge past ``limits``,
    from :meth:`feed` as soon as the problem is seen, or from :meth:`finish` for a truncated body.
    """

    _PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)

    def __init__(self, boundary: str, limits: MultipartLimits | None = None) -> None:
        self.limits = limits or MultipartLimits()
        self._dash_boundary = b"--" + boundary.encode("ascii")
        self._delimiter = b"\r\n" + self._dash_boundary
        self._buffer = bytearray()
        self._state = self._PREAMBLE
        self._parts: list[Part] = []
        self._current: tuple[str, str | None, str | None] | None = None
        self._chunks: list[bytes] = []
        self._part_bytes = 0
        self._file_bytes = 0
        self._field_bytes = 0
        self._preamble_seen = 0

    def feed(self, chunk: bytes) -> None:
        """Parse what ``chunk`` completes. Raises InvalidMultipart / PayloadTooLarge."""
        if self._state == self._DONE:
            return  # the epilogue is ignored
        self._buffer += chunk
        while self._step():
            pass

    def finish(self) -> list[Part]:
        """Return the parts once the closing delimiter was seen. Raises InvalidMultipart if it was not."""
        if self._state != self._DONE:
            where = "before the first delimiter" if self._state == self._PREAMBLE else "inside a part"
            raise InvalidMultipart(f"multipart body ends {where}, without the closing '--boundary--'")
        return self._parts

    # -- the state machine: each step consumes what it can and says whether to go on --------------------

    def _step(self) -> bool:
        if self._state == self._PREAMBLE:
            return self._preamble()
        if self._state == self._AFTER_DELIMITER:
            return self._after_delimiter()
        if self._state == self._HEADERS:
            return self._headers()
        if self._state == self._BODY:
            return self._body()
        return False

    def _preamble(self) -> bool:
        buffer = self._buffer
        if buffer.startswith(self._dash_boundary) and self._preamble_seen == 0:
            del buffer[:len(self._dash_boundary)]
            self._state = self._AFTER_DELIMITER
            return True
        index = buffer.find(self._delimiter)
        if index < 0:
            # Keep only what could still begin a delimiter; a preamble is bounded like a header block.
            keep = len(self._delimiter) - 1
            if len(buffer) > keep:
                self._preamble_seen += len(buffer) - keep
                del buffer[:len(buffer) - keep]
            if self._preamble_seen > self.limits.max_header_bytes:
                raise InvalidMultipart(f"no multipart delimiter in the first {self.limits.max_header_bytes} bytes "
                                       "(wrong boundary?)")
            return False
        del buffer[:index + len(self._delimiter)]
        self._state = self._AFTER_DELIMITER
        return True

    def _after_delimiter(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[:2] == b"--":
            self._state = self._DONE
            buffer.clear()
            return False
        # Transport padding (spaces, tabs) may follow a delimiter before its line break.
        stripped = buffer.lstrip(b" \t")
        if len(stripped) < 2:
            if len(buffer) > 64:
                raise InvalidMultipart("multipart delimiter is followed by too much whitespace")
            return False
        if stripped[:2] != b"\r\n":
            raise InvalidMultipart("multipart delimiter must be followed by CRLF or '--'")
        del buffer[:len(buffer) - len(stripped) + 2]
        if len(self._parts) >= self.limits.max_parts:
            raise PayloadTooLarge(f"more than {self.limits.max_parts} parts in the multipart body")
        self._state = self._HEADERS
        return True

    def _headers(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if buffer.startswith(b"\r\n"):
            end, block = 0, b""  # a part without headers
            del buffer[:2]
        elif end < 0:
            if len(buffer) > self.limits.max_header_bytes:
                raise InvalidMultipart(f"part {len(self._parts) + 1}: headers exceed {self.limits.max_header_bytes} bytes")
            return False
        else:
            if end > self.limits.max_header_bytes:
                raise InvalidMultipart(f"part {len(self._parts) + 1}: headers exceed {self.limits.max_header_bytes} bytes")
            block = bytes(buffer[:end])
            del buffer[:end + 4]
        self._current = self._parse_headers(block)
        self._chunks, self._part_bytes = [], 0
        self._state = self._BODY
        return True

    def _parse_headers(self, block: bytes) -> tuple[str, str | None, str | None]:
        number = len(self._parts) + 1
        headers: dict[str, str] = {}
        for line in block.split(b"\r\n") if block else ():
            name, sep, value = line.partition(b":")
            try:
                text_name, text_value = name.decode("ascii"), value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidMultipart(f"part {number}: a header is not valid text") from None
            if not sep or not _HEADER_NAME_RE.fullmatch(text_name):
                raise InvalidMultipart(f"part {number}: malformed header line {line[:80]!r}")
            headers[text_name.lower()] = text_value.strip()
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise InvalidMultipart(f"part {number}: missing Content-Disposition header")
        kind, _, params = disposition.partition(";")
        if kind.strip().lower() != "form-data":
            raise InvalidMultipart(f"part {number}: Content-Disposition must be form-data, got {kind.strip()[:50]!r}")
        values = {key.lower(): _unquote(value) for key, value in _PARAM_RE.findall(";" + params)}
        name = values.get("name")
        if name is None:
            raise InvalidMultipart(f"part {number}: Content-Disposition has no name")
        return name, values.get("filename"), headers.get("content-type")

    def _body(self) -> bool:
        buffer = self._buffer
        index = buffer.find(self._delimiter)
        if index < 0:
            # Everything but a possible start of the delimiter belongs to the part.
            take = len(buffer) - (len(self._delimiter) - 1)
            if take > 0:
                self._add(bytes(buffer[:take]))
                del buffer[:take]
            return False
        self._add(bytes(buffer[:index]))
        del buffer[:index + len(self._delimiter)]
        name, filename, content_type = self._current  # type: ignore[misc]
        self._parts.append(Part(name, filename, content_type, b"".join(self._chunks)))
        self._chunks, self._current = [], None
        self._state = self._AFTER_DELIMITER
        return True

    def _add(self, data: bytes) -> None:
        if not data:
            return
        is_file = self._current is not None and self._current[1] is not None
        if is_file:
            self._file_bytes += len(data)
            if self._file_bytes > self.limits.max_file_bytes:
                raise PayloadTooLarge(f"uploaded files exceed {self.limits.max_file_bytes} bytes")
        else:
            self._field_bytes += len(data)
            if self._field_bytes > self.limits.max_field_bytes:
                raise PayloadTooLarge(f"form fields exceed {self.limits.max_field_bytes} bytes")
        self._chunks.append(data)


def parse_multipart(body: bytes, content_type: str | None, limits: MultipartLimits | None = None, *,
                    chunk_size: int = 65536) -> list[Part]:
    """Parse a whole body, fed to :class:`MultipartParser` in ``chunk_size`` pieces. Never blocks.

    Raises InvalidMultipart for a bad Content-Type or body, PayloadTooLarge past ``limits``.
    """
    parser = MultipartParser(boundary_of(content_type), limits)
    view = memoryview(body)
    for start in range(0, len(body), chunk_size):
        parser.feed(bytes(view[start:start + chunk_size]))
    return parser.finish()
