"""Stage messages survive the trip through bytes (what a Kafka channel carries), and garbage does not decode."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.codec import decode_message, encode_message
from minisentry.envelope import Envelope, Item, parse_envelope, serialize_envelope
from minisentry.errors import CodecError
from minisentry.messages import Attachment, EnvelopeMessage, EventMessage, ProcessedEvent

EVENT_JSON = orjson.dumps({"event_id": "a" * 32, "message": "héllo\nworld", "extra": {"x": [1, 2]}})


def test_envelope_message_round_trip_keeps_payload_bytes():
    raw = (b'{"event_id":"' + b"a" * 32 + b'","dsn":"http://k@h/1"}\n'
           b'{"type":"event","length":' + str(len(EVENT_JSON)).encode() + b'}\n' + EVENT_JSON + b"\n"
           b'{"type":"attachment","filename":"a.bin","length":4}\n\x00\n\xff\x10\n')
    message = EnvelopeMessage(7, "k" * 32, 1700000000.5, parse_envelope(raw), "10.0.0.1")
    back = decode_message(encode_message(message))
    assert (back.project_id, back.public_key, back.received, back.remote_addr) == (7, "k" * 32, 1700000000.5, "10.0.0.1")
    assert back.envelope.headers == message.envelope.headers
    assert [(i.type, i.payload) for i in back.envelope.items] == [("event", EVENT_JSON), ("attachment", b"\x00\n\xff\x10")]


def test_event_message_round_trip_with_attachments():
    message = EventMessage(project_id=3, event_id="b" * 32, item_type="event", received=12.25, payload=EVENT_JSON,
                           remote_addr=None, errors=[{"type": "clock_drift"}], lane_switches=2, has_attachments=True,
                           sent_at="2026-11-26T00:00:00Z",
                           attachments=[Attachment("log.txt", "text/plain", "event.attachment", b"line\n" * 3),
                                        Attachment("empty", "application/octet-stream", "event.minidump", b"")])
    assert decode_message(encode_message(message)) == message


def test_processed_event_travels_as_body_plus_summary():
    data = {"event_id": "c" * 32, "release": "1.0", "platform": "python", "exception": {"values": [{"type": "E"}]},
            "contexts": {"trace": {"op": "http.server", "trace_id": "0" * 32}}}
    event = ProcessedEvent(project_id=1, event_id="c" * 32, item_type="event", received=1.0, timestamp=2.0,
                           data=dict(data), group_hash="f" * 32, title="E", culprit="m in f", level="warning",
                           metadata={"type": "E"}, attachments=[Attachment("a", "b", "c", b"\x01")])
    back = decode_message(encode_message(event))
    assert orjson.loads(back.body) == data  # the whole event, for the store to write as is
    assert back.data == {"release": "1.0", "platform": "python", "contexts": {"trace": {"op": "http.server"}}}
    assert (back.group_hash, back.title, back.culprit, back.level, back.metadata) == ("f" * 32, "E", "m in f",
                                                                                      "warning", {"type": "E"})
    assert back.attachments == [Attachment("a", "b", "c", b"\x01")]


def test_unknown_types_are_refused():
    with pytest.raises(CodecError, match="cannot encode a dict"):
        encode_message({"not": "a message"})


@pytest.mark.parametrize("record", [
    b"", b"\n", b"{}\n", b'{"v":1,"t":"event","parts":[5]}\nabc',  # sizes do not add up
    b'{"v":2,"t":"event","parts":[]}\n', b'{"v":1,"t":"nope","parts":[]}\n',
    b'{"v":1,"t":"event","parts":[0]}\n',  # fields missing
    b'[1,2]\n', b"\xff\xfe\n",
])
def test_garbage_is_a_codec_error(record):
    with pytest.raises(CodecError, match="undecodable message record"):
        decode_message(record)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_decode_or_raise_codec_error(data):
    try:
        decode_message(data)
    except CodecError:
        pass


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200), attachments=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=50)),
                                                             max_size=3),
       project_id=st.integers(1, 2**31), received=st.floats(0, 2e9), truncate=st.integers(0, 400))
def test_fuzz_event_round_trip_and_truncation(payload, attachments, project_id, received, truncate):
    message = EventMessage(project_id=project_id, event_id="d" * 32, item_type="transaction", received=received,
                           payload=payload, attachments=[Attachment(n, "t", "event.attachment", b) for n, b in attachments])
    record = encode_message(message)
    assert decode_message(record) == message
    if truncate < len(record):
        with pytest.raises(CodecError):
            decode_message(record[:truncate])
