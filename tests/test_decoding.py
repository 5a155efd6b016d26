"""Streaming body decoding: every Content-Encoding, size limits, bombs, corrupt input."""

from __future__ import annotations

import gzip
import itertools
import os
import struct
import tracemalloc
import zlib

import brotli
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.decoding import SUPPORTED_ENCODINGS, BodyDecoder
from minisentry.errors import BadRequest, PayloadTooLarge, RequestError, UnsupportedEncoding

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
STEP = 64 * KiB  # the most one decompression step may produce past the limit (decoding.py's contract)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


# Each case: (name, Content-Encoding, compress). "deflate" covers both zlib-wrapped and raw streams.
CODECS = {
    "identity": ("identity", lambda data: data),
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", raw_deflate),
    "br": ("br", lambda data: brotli.compress(data, quality=4)),
    "zstd": ("zstd", zstandard.ZstdCompressor().compress),
}
COMPRESSED = [name for name in CODECS if name != "identity"]


def decode(encoding: str, body: bytes, *, limit: int = 100 * MiB, chunk_sizes=(len,)) -> bytes:
    """Feed ``body`` in chunks of the given sizes (cycled; ``len`` means all at once), then finish."""
    decoder = BodyDecoder(encoding, limit)
    sizes = itertools.cycle(chunk_sizes)
    pos = 0
    while pos < len(body):
        size = next(sizes)
        size = len(body) if size is len else size
        decoder.feed(body[pos:pos + size])
        pos += size
    return decoder.finish()


def sample(size: int) -> bytes:
    """Compressible but not trivial data of exactly ``size`` bytes."""
    block = os.urandom(512) + b"abc" * 500
    return (block * (size // len(block) + 1))[:size]


def test_supported_encodings_are_the_tested_ones():
    assert set(SUPPORTED_ENCODINGS) == {encoding for encoding, _ in CODECS.values()}


# -- correct decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=3000),
    repeat=st.integers(1, 200),
    chunk_sizes=st.lists(st.integers(1, 80 * KiB), min_size=1, max_size=12),
)
def test_decodes_in_random_chunk_sizes(name, data, repeat, chunk_sizes):
    encoding, compress = CODECS[name]
    payload = data * repeat
    assert decode(encoding, compress(payload), chunk_sizes=chunk_sizes) == payload


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("size", [STEP - 1, STEP, STEP + 1, STEP + 3, 2 * STEP + 1, 3 * STEP + 258])
@pytest.mark.parametrize("fill", ["zeros", "pattern"])
def test_output_ending_just_past_a_step_boundary(name, size, fill):
    # A decompressor may stop at a full step with output still pending and no input left.
    encoding, compress = CODECS[name]
    payload = bytes(size) if fill == "zeros" else (bytes(range(256)) * (size // 256 + 1))[:size]
    assert decode(encoding, compress(payload)) == payload
    assert decode(encoding, compress(payload), chunk_sizes=(997,)) == payload


@pytest.mark.parametrize("encoding", [None, "", "identity", " GZIP ", "Br", "ZSTD"])
def test_encoding_names_are_normalized(encoding):
    compress = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstandard.ZstdCompressor().compress}
    key = (encoding or "identity").strip().lower()
    body = compress.get(key, lambda data: data)(b"payload")
    assert decode(encoding, body) == b"payload"


def test_empty_identity_body():
    assert decode("identity", b"") == b""


def test_gzip_accepts_zlib_wrapped_data_too():
    assert decode("gzip", zlib.compress(b"hello")) == b"hello"


def test_size_counts_decoded_bytes():
    decoder = BodyDecoder("gzip", MiB)
    decoder.feed(gzip.compress(bytes(5000)))
    assert decoder.size == 5000


# -- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CODECS)
def test_exactly_at_the_limit_passes(name):
    encoding, compress = CODECS[name]
    payload = sample(150_001)
    assert decode(encoding, compress(payload), limit=len(payload)) == payload
    assert decode(encoding, compress(payload), limit=len(payload), chunk_sizes=(4096,)) == payload


@pytest.mark.parametrize("name", CODECS)
@pytest.mark.parametrize("chunk_sizes", [(len,), (4096,)])
def test_one_byte_over_the_limit_is_refused(name, chunk_sizes):
    encoding, compress = CODECS[name]
    payload = sample(150_001)
    with pytest.raises(PayloadTooLarge) as info:
        decode(encoding, compress(payload), limit=len(payload) - 1, chunk_sizes=chunk_sizes)
    assert info.value.status == 413


def _zeros_bomb_deflate(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB), and its CRC-32.

    Built from one compressed MiB repeated: after a sync flush, each repetition is a run of
    byte-aligned non-final blocks whose back-references only reach into the (zero) window, so the
    concatenation is a valid stream. Compressing 1 GiB for real would take seconds.
    """
    assert size % MiB == 0 and size >= 2 * MiB
    zeros = bytes(MiB)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    middle = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    tail = c.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(size // MiB):
        crc = zlib.crc32(zeros, crc)
    return head + middle * (size // MiB - 1) + tail, crc


def gzip_bomb(size: int) -> bytes:
    raw, crc = _zeros_bomb_deflate(size)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + raw + struct.pack("<II", crc, size % 2**32)


def zlib_bomb(size: int) -> bytes:
    raw, _ = _zeros_bomb_deflate(size)
    adler = 1
    for _ in range(size // MiB):
        adler = zlib.adler32(bytes(MiB), adler)
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def streamed(compressor, finish, size: int) -> bytes:
    chunk = bytes(MiB)
    return b"".join(compressor(chunk) for _ in range(size // MiB)) + finish()


def brotli_bomb(size: int) -> bytes:
    c = brotli.Compressor(quality=1)
    return streamed(c.process, c.finish, size)


def zstd_bomb(size: int) -> bytes:
    c = zstandard.ZstdCompressor().compressobj()
    return streamed(c.compress, c.flush, size)


BOMBS = {"gzip": gzip_bomb, "deflate": zlib_bomb, "br": brotli_bomb, "zstd": zstd_bomb}


@pytest.mark.parametrize("encoding", BOMBS)
def test_bomb_builders_make_valid_streams(encoding):
    # The same builders at 4 MiB, checked with the reference decoders.
    reference = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress,
                 "zstd": zstandard.ZstdDecompressor().decompressobj().decompress}
    assert reference[encoding](BOMBS[encoding](4 * MiB)) == bytes(4 * MiB)


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {}


@pytest.mark.parametrize("encoding", BOMBS)
def test_decompression_bomb_is_refused_early_and_small(encoding, bombs):
    body = bombs.setdefault(encoding, BOMBS[encoding](GiB))
    limit = MiB
    decoder = BodyDecoder(encoding, limit)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            for pos in range(0, len(body), STEP):
                decoder.feed(body[pos:pos + STEP])
            decoder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert limit < decoder.size <= limit + STEP
    assert peak < 4 * MiB, f"peak traced memory {peak} bytes"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSED)
@pytest.mark.parametrize("cut", ["half", "last-byte", "first-byte-only"])
def test_truncated_streams_are_bad_requests(name, cut):
    encoding, compress = CODECS[name]
    body = compress(sample(100_000))
    body = {"half": body[: len(body) // 2], "last-byte": body[:-1], "first-byte-only": body[:1]}[cut]
    with pytest.raises(BadRequest):
        decode(encoding, body)
    with pytest.raises(BadRequest):
        decode(encoding, body, chunk_sizes=(7,))


@pytest.mark.parametrize("name", COMPRESSED)
def test_garbage_is_a_bad_request(name):
    encoding, _ = CODECS[name]
    with pytest.raises(BadRequest):
        decode(encoding, b"this is not a compressed body, just text\n" * 20)


@pytest.mark.parametrize("name", ["gzip", "x-gzip", "deflate-zlib"])
def test_corrupted_checksummed_stream_is_a_bad_request(name):
    encoding, compress = CODECS[name]
    body = bytearray(compress(sample(50_000)))
    body[-6] ^= 0xFF  # inside the trailer's checksum
    with pytest.raises(BadRequest):
        decode(encoding, bytes(body))


@pytest.mark.parametrize("name", COMPRESSED)
@pytest.mark.parametrize("same_chunk", [True, False], ids=["same-chunk", "later-chunk"])
def test_trailing_garbage_after_the_stream_is_a_bad_request(name, same_chunk):
    encoding, compress = CODECS[name]
    body = compress(b"hello world " * 100)
    chunk_sizes = (len,) if same_chunk else (len(body), 100)
    with pytest.raises(BadRequest, match="trailing|corrupt"):
        decode(encoding, body + b"garbage", chunk_sizes=chunk_sizes)


@pytest.mark.parametrize("encoding", ["compress", "lzma", "gzip, br", "br;q=1", "exi"])
def test_unknown_encoding_is_unsupported(encoding):
    with pytest.raises(UnsupportedEncoding) as info:
        BodyDecoder(encoding, MiB)
    assert info.value.status == 415


@st.composite
def damaged_streams(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(COMPRESSED))
    encoding, compress = CODECS[name]
    body = bytearray(compress(draw(st.binary(max_size=2000)) * draw(st.integers(1, 50))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert"]))
        if kind == "truncate":
            del body[at:]
        elif kind == "flip" and at < len(body):
            body[at] ^= draw(st.integers(1, 255))
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
    return encoding, bytes(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.tuples(st.sampled_from(SUPPORTED_ENCODINGS), st.binary(max_size=3000)) | damaged_streams(),
    limit=st.integers(0, 200_000),
    chunk_sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
)
def test_arbitrary_bytes_only_raise_request_errors(case, limit, chunk_sizes):
    encoding, body = case
    try:
        result = decode(encoding, body, limit=limit, chunk_sizes=chunk_sizes)
    except (BadRequest, PayloadTooLarge) as exc:
        assert isinstance(exc, RequestError)
    else:
        assert len(result) <= limit
