"""Envelope parsing and serialization: framing, validation, bounds, and round trips."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.envelope import MAX_ITEMS, Envelope, Item, parse_envelope, serialize_envelope
from minisentry.errors import BadRequest, InvalidEnvelope

EVENT = b'{"message":"hello"}'


def items_of(data: bytes) -> list[tuple[dict, bytes]]:
    return [(item.headers, item.payload) for item in parse_envelope(data).items]


# -- framing ---------------------------------------------------------------------------------


def test_header_and_items_are_parsed():
    envelope = parse_envelope(
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://k@x/1"}\n'
        b'{"type":"event","length":19}\n' + EVENT + b"\n"
        b'{"type":"attachment"}\nabc\n'
    )
    assert envelope.headers == {"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "dsn": "https://k@x/1"}
    assert envelope.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert [item.type for item in envelope.items] == ["event", "attachment"]
    assert [item.payload for item in envelope.items] == [EVENT, b"abc"]
    assert envelope.items[0].json() == {"message": "hello"}


def test_event_id_is_none_unless_a_string():
    assert parse_envelope(b'{"event_id":42}\n').event_id is None
    assert parse_envelope(b"{}\n").event_id is None


@pytest.mark.parametrize("trailer", [b"", b"\n", b"\n\n"])
def test_with_length_trailing_newline_is_optional(trailer):
    assert items_of(b'{}\n{"type":"event","length":19}\n' + EVENT + trailer) == [
        ({"type": "event", "length": 19}, EVENT)
    ]


@pytest.mark.parametrize("trailer", [b"", b"\n"])
def test_without_length_payload_runs_to_newline_or_end(trailer):
    assert items_of(b'{}\n{"type":"event"}\n' + EVENT + trailer) == [({"type": "event"}, EVENT)]


def test_header_only_envelope_with_and_without_newline():
    assert parse_envelope(b'{"a":1}').items == []
    assert parse_envelope(b'{"a":1}\n').items == []


@pytest.mark.parametrize(
    "data",
    [
        b'{}\n{"type":"x","length":0}\n\n',
        b'{}\n{"type":"x","length":0}\n',
        b'{}\n{"type":"x","length":0}',  # last header without its newline
        b'{}\n{"type":"x"}\n\n',
        b'{}\n{"type":"x"}\n',
        b'{}\n{"type":"x"}',
    ],
)
def test_empty_payloads(data):
    [(headers, payload)] = items_of(data)
    assert headers["type"] == "x"
    assert payload == b""


def test_empty_payload_without_length_is_followed_by_the_next_item():
    assert items_of(b'{}\n{"type":"a"}\n\n{"type":"b"}\nzz\n') == [({"type": "a"}, b""), ({"type": "b"}, b"zz")]


def test_binary_payload_with_newlines_needs_length():
    payload = b"\x00\n\xff\n\n{\"type\":\"fake\"}\n\r\n"
    data = b'{}\n{"type":"attachment","length":%d}\n' % len(payload) + payload + b'\n{"type":"event"}\n{}'
    assert items_of(data) == [
        ({"type": "attachment", "length": len(payload)}, payload),
        ({"type": "event"}, b"{}"),
    ]


def test_unknown_item_types_and_unknown_headers_are_kept():
    data = b'{"x-custom":[1,2],"sdk":{"name":"s"}}\n{"type":"future_thing","weird":{"a":null},"length":2}\nok\n'
    envelope = parse_envelope(data)
    assert envelope.headers == {"x-custom": [1, 2], "sdk": {"name": "s"}}
    assert envelope.items[0].headers == {"type": "future_thing", "weird": {"a": None}, "length": 2}
    assert envelope.items[0].payload == b"ok"


def test_item_json_raises_invalid_envelope_on_bad_json():
    [item] = parse_envelope(b'{}\n{"type":"event"}\nnot json\n').items
    with pytest.raises(InvalidEnvelope, match="event"):
        item.json()


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b" \n\n ", id="blank"),
        pytest.param(b"{nope\n", id="header-not-json"),
        pytest.param(b"[]\n", id="header-array"),
        pytest.param(b'"s"\n', id="header-string"),
        pytest.param(b"null\n", id="header-null"),
        pytest.param(b'{}\n{"type":\n', id="item-header-not-json"),
        pytest.param(b"{}\n[1]\n", id="item-header-array"),
        pytest.param(b"{}\n\xff\xfe\n", id="item-header-not-utf8"),
        pytest.param(b'{}\n{"length":1}\nx\n', id="type-missing"),
        pytest.param(b'{}\n{"type":1}\nx\n', id="type-int"),
        pytest.param(b'{}\n{"type":null}\nx\n', id="type-null"),
        pytest.param(b'{}\n{"type":""}\nx\n', id="type-empty"),
        pytest.param(b'{}\n{"type":"x","length":-1}\nx\n', id="length-negative"),
        pytest.param(b'{}\n{"type":"x","length":true}\nx\n', id="length-bool"),
        pytest.param(b'{}\n{"type":"x","length":1.0}\nx\n', id="length-float"),
        pytest.param(b'{}\n{"type":"x","length":"1"}\nx\n', id="length-string"),
        pytest.param(b'{}\n{"type":"x","length":3}\nab', id="length-overlong"),
        pytest.param(b'{}\n{"type":"x","length":1}\n', id="length-past-end"),
        pytest.param(b'{}\n{"type":"x","length":18446744073709551615}\nx', id="length-huge"),
        pytest.param(b'{}\n{"type":"x","length":1e30}\nx', id="length-exponent"),
        pytest.param(b'{"a":' + b"[" * 300 + b"]" * 300 + b"}\n", id="header-too-deep-to-write"),
    ],
)
def test_invalid_envelopes_are_refused(data):
    with pytest.raises(InvalidEnvelope):
        parse_envelope(data)


def test_invalid_envelope_is_a_bad_request():
    with pytest.raises(BadRequest) as info:
        parse_envelope(b"[]")
    assert info.value.status == 400
    assert info.value.reason == "invalid_envelope"


def test_max_items_is_a_bound():
    at_limit = b"{}\n" + b'{"type":"x"}\n\n' * MAX_ITEMS
    assert len(parse_envelope(at_limit).items) == MAX_ITEMS
    with pytest.raises(InvalidEnvelope, match=str(MAX_ITEMS)):
        parse_envelope(at_limit + b'{"type":"x"}\n')


def test_blank_lines_do_not_count_as_items():
    data = b"{}\n" + b"\n" * (MAX_ITEMS + 5) + b'{"type":"x"}\ny\n'
    assert items_of(data) == [({"type": "x"}, b"y")]


# -- serialization -------------------------------------------------------------------------------


def test_serialize_writes_explicit_lengths():
    envelope = Envelope({"event_id": "abc"}, [Item({"type": "event", "length": 999}, b"a\nb"), Item({"type": "x"}, b"")])
    data = serialize_envelope(envelope)
    assert data == b'{"event_id":"abc"}\n{"type":"event","length":3}\na\nb\n{"type":"x","length":0}\n\n'
    assert envelope.items[0].headers["length"] == 999  # the caller's item is not modified


def test_serialize_parse_round_trip_of_a_parsed_envelope():
    original = b'{"e":1}\n{"type":"event"}\n{"a":1}\n{"type":"attachment","length":3,"filename":"f"}\n\n\n\n'
    parsed = parse_envelope(original)
    again = parse_envelope(serialize_envelope(parsed))
    assert again.headers == parsed.headers
    assert [(i.headers, i.payload) for i in again.items] == [
        ({"type": "event", "length": 7}, b'{"a":1}'),
        ({"type": "attachment", "length": 3, "filename": "f"}, b"\n\n\n"),
    ]


# -- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
items = st.builds(
    lambda headers, type_, payload: Item({**headers, "type": type_}, payload),
    json_objects, st.text(min_size=1, max_size=15), st.binary(max_size=200),
)
envelopes = st.builds(Envelope, json_objects, st.lists(items, max_size=6))


@st.composite
def mutated_envelopes(draw) -> bytes:
    """Valid envelope bytes, then truncated, byte-flipped, newline-inserted or cut."""
    data = bytearray(serialize_envelope(draw(envelopes)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "newline", "delete", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "newline":
            data[at:at] = b"\n"
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 40))]
    return bytes(data)


def canonical(envelope: Envelope) -> tuple:
    """What serialization must preserve: headers, and items with their length made explicit."""
    return envelope.headers, [({**item.headers, "length": len(item.payload)}, item.payload) for item in envelope.items]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | mutated_envelopes())
def test_arbitrary_bytes_parse_or_raise_invalid_envelope(data):
    try:
        envelope = parse_envelope(data)
    except InvalidEnvelope:
        return
    assert isinstance(envelope, Envelope)
    assert len(envelope.items) <= MAX_ITEMS
    assert sum(len(item.payload) for item in envelope.items) <= len(data)
    for item in envelope.items:
        assert isinstance(item.type, str) and item.type
    # whatever was accepted can be written back and reads the same
    assert canonical(parse_envelope(serialize_envelope(envelope))) == canonical(envelope)


@given(envelopes)
def test_round_trip_of_generated_envelopes(envelope):
    data = serialize_envelope(envelope)
    parsed = parse_envelope(data)
    assert canonical(parsed) == canonical(envelope)
    assert serialize_envelope(parsed) == data


def test_serialized_headers_are_one_line_each():
    envelope = Envelope({"m": "a\nb"}, [Item({"type": "t\nu"}, b"p")])
    lines = serialize_envelope(envelope).split(b"\n")
    assert orjson.loads(lines[0]) == {"m": "a\nb"}
    assert orjson.loads(lines[1]) == {"type": "t\nu", "length": 1}
