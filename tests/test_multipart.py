"""The bounded multipart parser and the minidump envelope built from its parts (Hypothesis-fuzzed)."""

from __future__ import annotations

import bz2
import gzip
import lzma

import msgpack
import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.errors import InvalidMultipart, PayloadTooLarge
from minisentry.minidump import minidump_envelope
from minisentry.multipart import MultipartLimits, MultipartParser, Part, boundary_of, parse_multipart

BOUNDARY = "----minisentryBoundary7MA4YWxk"
CT = f"multipart/form-data; boundary={BOUNDARY}"
MINIDUMP = b"MDMP\x93\xa7\x00\x00" + bytes(range(256)) * 4


def encode(parts: list[Part], boundary: str = BOUNDARY, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = [preamble]
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if part.content_type:
            out.append(f"Content-Type: {part.content_type}\r\n".encode())
        out.append(b"\r\n" + part.data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode() + epilogue)
    return b"".join(out)


def test_parts_are_read_with_names_filenames_and_types():
    parts = [Part("upload_file_minidump", "crash.dmp", "application/octet-stream", MINIDUMP),
             Part("sentry[release]", None, None, b"app@1.0"), Part("empty", None, None, b"")]
    assert parse_multipart(encode(parts, preamble=b"ignored\r\n", epilogue=b"ignored too"), CT) == parts


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 1 << 20])
def test_any_chunking_gives_the_same_parts(chunk_size):
    parts = [Part("a", "x.bin", None, b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n" * 3), Part("b", None, None, b"-")]
    assert parse_multipart(encode(parts), CT, chunk_size=chunk_size) == parts


@pytest.mark.parametrize(("content_type", "message"), [
    (None, "missing Content-Type"),
    ("application/json", "must be multipart/form-data"),
    ("multipart/form-data", "no boundary"),
    ("multipart/form-data; boundary=" + "x" * 71, "1-70 characters"),
])
def test_bad_content_types(content_type, message):
    with pytest.raises(InvalidMultipart, match=message):
        boundary_of(content_type)


def test_quoted_boundary():
    assert boundary_of('multipart/form-data; charset=utf-8; boundary="a b:c"') == "a b:c"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "ends before the first delimiter"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nno end".encode(), "ends inside a part"),
    (f"--{BOUNDARY}\r\n\r\ndata\r\n--{BOUNDARY}--".encode(), "part 1: missing Content-Disposition"),
    (f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\n\r\n--{BOUNDARY}--".encode(), "must be form-data"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\n\r\n--{BOUNDARY}--".encode(), "has no name"),
    (f"--{BOUNDARY}\r\nno colon here\r\n\r\n\r\n--{BOUNDARY}--".encode(), "malformed header line"),
    (f"--{BOUNDARY}XX".encode(), "followed by CRLF"),
    (b"x" * 10000, "no multipart delimiter in the first"),
    (f"--{BOUNDARY}\r\n".encode() + b"H: " + b"v" * 9000, "headers exceed 8192 bytes"),
])
def test_malformed_bodies_are_refused_precisely(body, message):
    with pytest.raises(InvalidMultipart, match=message):
        parse_multipart(body, CT)


def test_limits_on_parts_files_and_fields():
    many = [Part(f"f{i}", None, None, b"") for i in range(5)]
    with pytest.raises(PayloadTooLarge, match="more than 4 parts"):
        parse_multipart(encode(many), CT, MultipartLimits(max_parts=4))
    with pytest.raises(PayloadTooLarge, match="uploaded files exceed 100 bytes"):
        parse_multipart(encode([Part("f", "f.bin", None, b"x" * 101)]), CT, MultipartLimits(max_file_bytes=100))
    with pytest.raises(PayloadTooLarge, match="form fields exceed 10 bytes"):
        parse_multipart(encode([Part("a", None, None, b"123456"), Part("b", None, None, b"123456")]), CT,
                        MultipartLimits(max_field_bytes=10))


def test_parser_buffer_stays_bounded_while_streaming():
    parser = MultipartParser(BOUNDARY)
    parser.feed(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n".encode())
    for _ in range(100):
        parser.feed(b"y" * 10000)
        assert len(parser._buffer) < len(BOUNDARY) + 4
    parser.feed(f"\r\n--{BOUNDARY}--".encode())
    assert parser.finish()[0].data == b"y" * 1_000_000


def test_minidump_envelope_event_and_attachments():
    envelope = minidump_envelope([
        Part("upload_file_minidump", "crash.dmp", None, MINIDUMP),
        Part("sentry", None, None, b'{"release": "app@2", "tags": {"a": "1"}}'),
        Part("sentry[tags][build]", None, None, b"42"), Part("sentry[environment]", None, None, b"prod"),
        Part("guid", None, None, b"abc"), Part("log", "app.log", "text/plain", b"started\n"),
    ])
    event_item, dump, log = envelope.items
    event = orjson.loads(event_item.payload)
    assert event["platform"] == "native" and event["level"] == "fatal" and event["release"] == "app@2"
    assert event["tags"] == {"a": "1", "build": "42"} and event["environment"] == "prod"
    assert event["extra"] == {"guid": "abc"}
    assert event["exception"]["values"][0]["type"] == "Minidump"
    assert envelope.headers["event_id"] == event["event_id"]
    assert dump.headers == {"type": "attachment", "attachment_type": "event.minidump", "filename": "crash.dmp",
                            "content_type": "application/octet-stream"} and dump.payload == MINIDUMP
    assert log.headers["attachment_type"] == "event.attachment" and log.headers["filename"] == "app.log"


@pytest.mark.parametrize(("parts", "message", "reason"), [
    ([Part("other", "x.dmp", None, MINIDUMP)], "no field 'upload_file_minidump'", "missing_minidump_upload"),
    ([Part("upload_file_minidump", "x", None, b"ELF\x7f....")], "not a minidump", "invalid_minidump"),
    ([Part("upload_file_minidump", "x", None, b"\x1f\x8bnot gzip")], "gzip minidump is corrupt",
     "invalid_compression"),
    ([Part("upload_file_minidump", "x", None, b"BZh9 not bzip2")], "bzip2 minidump is corrupt", "invalid_compression"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("__sentry-event", "e", None, b"\xc1")],
     "__sentry-event is not valid msgpack", "invalid_msgpack"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("__sentry-event", "e", None, msgpack.packb([1]))],
     "must hold a map", "invalid_msgpack"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry[level]", None, None, b"a"),
      Part("sentry[level][x]", None, None, b"b")], "already set to a plain value", "invalid_multipart"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("note", None, None, b"\xff")], "not UTF-8",
     "invalid_multipart"),
])
def test_bad_minidump_uploads(parts, message, reason):
    with pytest.raises(InvalidMultipart, match=message) as caught:
        minidump_envelope(parts)
    assert caught.value.reason == reason


@pytest.mark.parametrize("field", [b"[1]", b"{", b'"just a string"'])
def test_a_broken_sentry_json_field_is_noted_and_the_crash_kept(field):
    # As in Relay: the crash report matters more than its metadata.
    envelope = minidump_envelope([Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry", None, None, field),
                                  Part("sentry[release]", None, None, b"app@1")])
    event = orjson.loads(envelope.items[0].payload)
    assert event["release"] == "app@1"
    assert [(e["type"], e["name"]) for e in event["errors"]] == [("invalid_data", "sentry")]
    assert envelope.items[1].payload == MINIDUMP


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda data: zstandard.ZstdCompressor().compress(data)],
                         ids=["gzip", "bzip2", "xz", "zstd"])
def test_compressed_minidumps_are_stored_decompressed(compress):
    envelope = minidump_envelope([Part("upload_file_minidump", "crash.dmp.gz", None, compress(MINIDUMP))])
    assert envelope.items[1].headers["attachment_type"] == "event.minidump"
    assert envelope.items[1].payload == MINIDUMP


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda data: zstandard.ZstdCompressor().compress(data)],
                         ids=["gzip", "bzip2", "xz", "zstd"])
def test_a_compressed_minidump_bomb_is_refused_at_the_limit(compress):
    bomb = compress(b"MDMP" + b"\0" * 5_000_000)
    assert len(bomb) < 60_000
    with pytest.raises(PayloadTooLarge, match="inflates past 100000 bytes"):
        minidump_envelope([Part("upload_file_minidump", "x", None, bomb)], max_dump_bytes=100_000)
    # Exactly at the limit it is taken.
    exact = compress(b"MDMP" + b"\0" * 99_996)
    assert len(minidump_envelope([Part("upload_file_minidump", "x", None, exact)],
                                 max_dump_bytes=100_000).items[1].payload) == 100_000


def test_msgpack_event_breadcrumbs_namespaces_and_chunks_are_applied():
    crumbs1 = [{"timestamp": 10, "message": "a"}, {"timestamp": 30, "message": "c"}, {"timestamp": 40, "message": "d"}]
    crumbs2 = [{"timestamp": 20, "message": "b"}, {"timestamp": "1970-01-01T00:00:50Z", "message": "e"}]
    event_json = b'{"release": "app@3", "tags": {"t": "1"}}'
    envelope = minidump_envelope([
        Part("upload_file_minidump", "crash.dmp", None, MINIDUMP),
        Part("__sentry-event", "__sentry-event", None,
             msgpack.packb({"event_id": "2dd132e467174db48dbaddabd3cbed57", "user": {"id": "123"},
                            "tags": {"from": "msgpack"}})),
        Part("__sentry-breadcrumb1", "__sentry-breadcrumb1", None, msgpack.packb(crumbs1)),
        Part("__sentry-breadcrumb2", "__sentry-breadcrumb2", None, msgpack.packb(crumbs2)),
        Part("sentry___global", None, None, b'{"environment": "prod"}'),
        Part("sentry__2", None, None, event_json[20:]), Part("sentry__1", None, None, event_json[:20]),
        Part("attachment1", "attach1.txt", "text/plain", b"attachment content"),
    ])
    event = orjson.loads(envelope.items[0].payload)
    assert envelope.headers["event_id"] == event["event_id"] == "2dd132e467174db48dbaddabd3cbed57"
    assert event["user"] == {"id": "123"} and event["environment"] == "prod" and event["release"] == "app@3"
    assert event["tags"] == {"from": "msgpack", "t": "1"}
    # The two ring-buffer halves: merged by time, as many kept as the longer half held (3).
    assert [c["message"] for c in event["breadcrumbs"]["values"]] == ["c", "d", "e"]
    # The __sentry-* payloads are read, not kept.
    assert [(i.headers["attachment_type"], i.headers["filename"]) for i in envelope.items[1:]] == [
        ("event.minidump", "crash.dmp"), ("event.attachment", "attach1.txt")]


def test_a_single_breadcrumb_per_half_is_a_list_of_one():
    envelope = minidump_envelope([
        Part("upload_file_minidump", "crash.dmp", None, MINIDUMP),
        Part("__sentry-breadcrumb1", "b1", None, msgpack.packb({"timestamp": 1461185755, "message": "A"})),
        Part("__sentry-breadcrumb2", "b2", None, msgpack.packb({"timestamp": 1461185750, "message": "B"})),
    ])
    assert [c["message"] for c in orjson.loads(envelope.items[0].payload)["breadcrumbs"]["values"]] == ["A"]


def test_electron_nests_the_minidump_in_its_own_form_body():
    nested = encode([Part("upload_file_minidump", "inner.dmp", None, MINIDUMP), Part("prod", None, None, b"Electron")],
                    boundary="----electronBoundary")
    envelope = minidump_envelope([Part("upload_file_minidump", "minidump.dmp", None, nested)])
    assert envelope.items[1].payload == MINIDUMP


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400) | st.sampled_from([gzip.compress, bz2.compress, lzma.compress]).flatmap(
    lambda compress: st.binary(max_size=200).map(lambda raw: compress(b"MDMP" + raw))).flatmap(
    lambda good: st.tuples(st.integers(0, len(good)), st.binary(max_size=8)).map(
        lambda cut: good[:cut[0]] + cut[1] + good[cut[0] + len(cut[1]):])))
def test_fuzz_any_minidump_file_unpacks_or_is_refused(data):
    try:
        envelope = minidump_envelope([Part("upload_file_minidump", "x", None, data)], max_dump_bytes=10_000)
    except (InvalidMultipart, PayloadTooLarge) as exc:
        assert exc.reason in ("invalid_minidump", "invalid_compression", "too_large")
        return
    assert envelope.items[1].payload[:4] in (b"MDMP", b"PMDM")


@settings(max_examples=300, deadline=None)
@given(event=st.binary(max_size=200), crumbs=st.binary(max_size=200))
def test_fuzz_any_msgpack_payloads_are_applied_or_refused(event, crumbs):
    parts = [Part("upload_file_minidump", "x", None, MINIDUMP), Part("__sentry-event", "e", None, event),
             Part("__sentry-breadcrumb1", "b", None, crumbs)]
    try:
        envelope = minidump_envelope(parts)
    except InvalidMultipart as exc:
        assert exc.reason == "invalid_msgpack"
        return
    orjson.loads(envelope.items[0].payload)


names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e, exclude_characters='"\\;'), min_size=1,
                max_size=20)
parts_st = st.lists(st.builds(Part, names, st.none() | names, st.none() | st.sampled_from(["text/plain", "a/b"]),
                              st.binary(max_size=300)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(parts=parts_st, chunk=st.integers(1, 500))
def test_fuzz_round_trip(parts, chunk):
    assert parse_multipart(encode(parts), CT, chunk_size=chunk) == parts


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=600) | parts_st.map(encode).flatmap(
    lambda good: st.tuples(st.integers(0, len(good)), st.binary(max_size=20)).map(
        lambda cut: good[:cut[0]] + cut[1] + good[cut[0]:])), chunk=st.integers(1, 64))
def test_fuzz_any_body_parses_or_is_refused_with_a_request_error(body, chunk):
    try:
        parts = parse_multipart(body, CT, MultipartLimits(max_parts=5, max_file_bytes=500, max_field_bytes=500),
                                chunk_size=chunk)
    except (InvalidMultipart, PayloadTooLarge):
        return
    try:
        minidump_envelope(parts)
    except InvalidMultipart:
        pass


def test_deeply_nested_event_fields_are_refused_not_a_crash():
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    parts = [Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry", None, None, deep),
             Part("sentry___more", None, None, deep)]
    with pytest.raises(InvalidMultipart, match="cannot be encoded") as caught:
        minidump_envelope(parts)
    assert caught.value.reason == "invalid_multipart"
    # Shallow enough to encode, merged object by object only down to the merge depth.
    shallow = b'{"a":' * 30 + b"1" + b"}" * 30
    envelope = minidump_envelope([Part("upload_file_minidump", "x", None, MINIDUMP),
                                  Part("sentry", None, None, shallow), Part("sentry___more", None, None, shallow)])
    assert orjson.loads(envelope.items[0].payload)["a"]["a"]
