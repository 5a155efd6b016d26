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


class BodyDecoder:
    """Decode one request body incrementally. Does not block (CPU only, bounded per call).

    ``feed`` raises PayloadTooLarge past ``limit`` decoded bytes and BadRequest on corrupt data;
    the constructor raises UnsupportedEncoding for an encoding outside SUPPORTED_ENCODINGS.
    """

    def __init__(self, encoding: str | None, limit: int) -> None:
        encoding = (encoding or "identity").strip().lower()
        self.encoding = encoding
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
            self._feed(chunk)

    def finish(self) -> bytes:
        """Check the stream ended cleanly and return the whole decoded body."""
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
            while data:
                if self._zlib.eof:
                    raise BadRequest(f"trailing data after the end of the {self.encoding} stream")
                self._sink.write(self._zlib.decompress(data, _STEP))
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise BadRequest(f"corrupt {self.encoding} body: {exc}") from exc

    def _feed_brotli(self, chunk: bytes) -> None:
        try:
            if self._brotli.is_finished():
                raise BadRequest("trailing data after the end of the br stream")
            self._sink.write(self._brotli.process(chunk, output_buffer_limit=_STEP))
            while not self._brotli.can_accept_more_data():
                self._sink.write(self._brotli.process(b"", output_buffer_limit=_STEP))
        except brotli.error as exc:
            raise BadRequest(f"corrupt br body: {exc}") from exc

    def _feed_zstd(self, chunk: bytes) -> None:
        try:
            self._zstd.write(chunk)
        except zstandard.ZstdError as exc:
            raise BadRequest(f"corrupt zstd body: {exc}") from exc
