"""The bounded multipart parser and the minidump envelope built from its parts (Hypothesis-fuzzed)."""

from __future__ import annotations

import orjson
import pytest
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


@pytest.mark.parametrize(("parts", "message"), [
    ([Part("other", "x.dmp", None, MINIDUMP)], "no file field 'upload_file_minidump'"),
    ([Part("upload_file_minidump", None, None, MINIDUMP)], "no file field"),
    ([Part("upload_file_minidump", "x", None, b"ELF\x7f....")], "not a minidump"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry", None, None, b"[1]")], "JSON object"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry", None, None, b"{")], "not JSON"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("sentry[level]", None, None, b"a"),
      Part("sentry[level][x]", None, None, b"b")], "already set to a plain value"),
    ([Part("upload_file_minidump", "x", None, MINIDUMP), Part("note", None, None, b"\xff")], "not UTF-8"),
])
def test_bad_minidump_uploads(parts, message):
    with pytest.raises(InvalidMultipart, match=message):
        minidump_envelope(parts)


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
