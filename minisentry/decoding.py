"""Streaming request-body decoding with a hard limit on the *decoded* size.

Bodies arrive in chunks; each chunk is decompressed as it comes and the running total is checked
against the limit after every bounded step, so a decompression bomb (a few KB that inflate to
gigabytes) is refused after inflating at most ``limit`` plus one step's worth of bytes.
"""

from __future__ import annotations

import zlib

import brotli
import zstandard

from .errors import BadRequest, PayloadTooLarge, UnsupportedEncoding

__all__ = ["BodyDecoder", "SUPPORTED_ENCODINGS"]

SUPPORTED_ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "br", "zstd")

# The most any single decompression step may produce before the limit is checked again.
_STEP = 64 * 1024
# brotli's output buffer grows in blocks (about 32 KiB, then 64 KiB, ...) until it holds at least
# output_buffer_limit bytes, so asking for a quarter step yields one block: at most about half a step.
_BROTLI_LIMIT = _STEP // 4


class _LimitedSink:
    """Collects decoded bytes and raises PayloadTooLarge as soon as the total passes the limit."""

    __slots__ = ("parts", "size", "limit")

    def __init__(self, limit: int) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"body exceeds {self.limit} bytes after decompression")
        self.parts.append(bytes(data))
        return len(data)


class _ZstdFrames:
    """Walks zstd frame and block headers (not their contents) to tell whether the input so far ends
    on a frame boundary. zstandard's stream writer decodes with bounded output but cannot tell a
    truncated frame from a complete one; the framing alone can (RFC 8878, section 3.1)."""

    __slots__ = ("_state", "_want", "_buf", "_skip", "_checksum")

    def __init__(self) -> None:
        self._state = "magic"  # which header is being collected: magic, skippable, frame, block
        self._want = 4
        self._buf = b""
        self._skip = 0  # content bytes to pass over before the next header
        self._checksum = 0

    @property
    def at_boundary(self) -> bool:
        return self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        pos, size = 0, len(data)
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            take = data[pos:pos + self._want - len(self._buf)]
            self._buf += take
            pos += len(take)
            if len(self._buf) == self._want:
                header, self._buf = self._buf, b""
                self._header(header)

    def _header(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == "magic":
            if value == 0xFD2FB528:
                self._state, self._want = "frame", 1
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._want = "skippable", 4
            else:
                raise BadRequest("corrupt zstd body: unknown frame magic")
        elif self._state == "skippable":
            self._state, self._want, self._skip = "magic", 4, value
        elif self._state == "frame":
            single_segment = value >> 5 & 1
            self._checksum = 4 if value >> 2 & 1 else 0
            self._skip = (0 if single_segment else 1) + (0, 1, 2, 4)[value & 3] + (single_segment, 2, 4, 8)[value >> 6]
            self._state, self._want = "block", 3
        else:  # block header: last-block bit, 2-bit type (raw, RLE, compressed, reserved), 21-bit size
            last, block_type, block_size = value & 1, value >> 1 & 3, value >> 3
            if block_type == 3:
                raise BadRequest("corrupt zstd body: reserved block type")
            self._skip = 1 if block_type == 1 else block_size
            if last:
                self._skip += self._checksum
                self._state, self._want = "magic", 4


class BodyDecoder:
    """Decode one request body incrementally. Does not block (CPU only, bounded per call).

    ``feed`` raises PayloadTooLarge past ``limit`` decoded bytes and BadRequest on corrupt data;
    the constructor raises UnsupportedEncoding for an encoding outside SUPPORTED_ENCODINGS.
    """

    def __init__(self, encoding: str | None, limit: int) -> None:
        encoding = (encoding or "identity").strip().lower()
        self.encoding = encoding
        self._fed = False
        self._sink = _LimitedSink(limit)
        if encoding == "identity":
            self._feed = self._sink.write
        elif encoding in ("gzip", "x-gzip", "deflate"):
            # deflate in HTTP means zlib-wrapped, but some clients send raw deflate; 47 accepts
            # gzip and zlib headers automatically, raw deflate is detected on the first byte.
            self._zlib_wbits = 47 if encoding != "deflate" else None
            self._zlib: "zlib._Decompress | None" = None
            self._feed = self._feed_zlib
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
            self._feed = self._feed_brotli
        elif encoding == "zstd":
            # The stream writer hands output to the sink in bounded chunks, so the sink's limit
            # check interrupts decompression mid-frame.
            self._zstd = zstandard.ZstdDecompressor().stream_writer(
                self._sink, write_size=_STEP, write_return_read=True, closefd=False
            )
            self._zstd_frames = _ZstdFrames()
            self._feed = self._feed_zstd
        else:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")

    @property
    def size(self) -> int:
        """Decoded bytes so far."""
        return self._sink.size

    def feed(self, chunk: bytes) -> None:
        """Decode one chunk of the body."""
        if chunk:
            self._fed = True
            self._feed(chunk)

    def finish(self) -> bytes:
        """Check the stream ended cleanly and return the whole decoded body."""
        if not self._fed:
            return b""  # an empty body is empty in every encoding
        if self.encoding in ("gzip", "x-gzip", "deflate"):
            if self._zlib is None:
                if self._sink.size == 0 and not self._sink.parts:
                    return b""
            elif not self._zlib.eof:
                raise BadRequest(f"truncated {self.encoding} body")
        elif self.encoding == "br" and not self._brotli.is_finished():
            raise BadRequest("truncated br body")
        elif self.encoding == "zstd":
            try:
                self._zstd.flush()
            except zstandard.ZstdError as exc:
                raise BadRequest(f"corrupt zstd body: {exc}") from exc
            if not self._zstd_frames.at_boundary:
                raise BadRequest("truncated zstd body")
        return b"".join(self._sink.parts)

    def _feed_zlib(self, chunk: bytes) -> None:
        if self._zlib is None:
            wbits = self._zlib_wbits
            if wbits is None:
                # zlib streams start with 0x78 (deflate, 32K window); anything else is raw deflate.
                wbits = 15 if chunk[:1] == b"\x78" else -15
            self._zlib = zlib.decompressobj(wbits)
        data = chunk
        try:
            while not self._zlib.eof:
                out = self._zlib.decompress(data, _STEP)
                self._sink.write(out)
                data = self._zlib.unconsumed_tail
                # A full step may leave output pending inside zlib even when all input was taken.
                if not data and len(out) < _STEP:
                    break
        except zlib.error as exc:
            raise BadRequest(f"corrupt {self.encoding} body: {exc}") from exc
        # Input past the end of the stream: in a later chunk (data) or in this one (unused_data).
        if data or self._zlib.unused_data:
            raise BadRequest(f"trailing data after the end of the {self.encoding} stream")

    def _feed_brotli(self, chunk: bytes) -> None:
        try:
            if self._brotli.is_finished():
                raise BadRequest("trailing data after the end of the br stream")
            out = self._brotli.process(chunk, output_buffer_limit=_BROTLI_LIMIT)
            self._sink.write(out)
            # A full buffer may leave output pending even when can_accept_more_data() is True.
            while len(out) >= _BROTLI_LIMIT or not self._brotli.can_accept_more_data():
                out = self._brotli.process(b"", output_buffer_limit=_BROTLI_LIMIT)
                self._sink.write(out)
        except brotli.error as exc:
            raise BadRequest(f"corrupt br body: {exc}") from exc

    def _feed_zstd(self, chunk: bytes) -> None:
        try:
            self._zstd.write(chunk)
        except zstandard.ZstdError as exc:
            raise BadRequest(f"corrupt zstd body: {exc}") from exc
        self._zstd_frames.feed(chunk)
