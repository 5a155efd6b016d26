"""The scrubber's exact fast path (``minisentry.scrub_precheck``) against the real Relay.

The property that makes the fast path safe: for every normalized event, ``scrub(event,
normalized=True)`` (which skips Relay when the precheck says no rule could change the event) gives
byte for byte what Relay gives. Events are built from a vocabulary of triggers and near misses,
normalized by the pipeline's own ``_normalize``, and given ``received`` and filled-in IPs as the
process stage does. The suite runs ``DIFFERENTIAL_EXAMPLES`` examples per configuration; set
``MINISENTRY_PRECHECK_EXAMPLES=2000`` for a long local run.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from minisentry.clientip import fill_auto_ip
from minisentry.messages import EventMessage
from minisentry.scrub_precheck import ANALYSED_RELAY_VERSION, only_lengths_in_meta, precheck_for, relay_timestamp
from minisentry.scrubbing import Scrubber, ScrubbingSettings
from minisentry.stages.process import _normalize

DIFFERENTIAL_EXAMPLES = int(os.environ.get("MINISENTRY_PRECHECK_EXAMPLES", "150"))
REMOTE_ADDR = "198.51.100.23"
CONFIGS = {
    "defaults": ScrubbingSettings(),
    "ip": ScrubbingSettings(scrub_ip_addresses=True),
    "sensitive+safe": ScrubbingSettings(sensitive_fields=("loyalty", " Member.No "), safe_fields=("note",)),
    "ip only": ScrubbingSettings(enabled=False, scrub_ip_addresses=True),
}
SCRUBBERS = {name: Scrubber(config) for name, config in CONFIGS.items()}


def pipeline_event(raw: dict, received: float = 1795744412.0861635) -> dict:
    """``raw`` as the process stage hands it to the scrubber: normalized, received, IPs filled.

    An event without a timestamp gets a fixed one: the normalizer would stamp "now", a float that
    Relay reads back one unit off now and then, which makes the precheck (rightly) say "maybe" on
    some runs and not others. Likewise a fixed event id (the trace context repeats it): a random
    one holds 15 decimal digits in a row, which the card-number check rightly calls a "maybe",
    in about one run in fifty.
    """
    raw = {"timestamp": 1795744412.5, "event_id": "fe690d3bea084a56847ce2deab2259c2", **raw}
    message = EventMessage(1, uuid.uuid4().hex, "event", received, orjson.dumps(raw), REMOTE_ADDR)
    data = _normalize(message)
    assert data is not None
    fill_auto_ip(data, REMOTE_ADDR)
    return data


def fast_path_taken(scrubber: Scrubber, data: dict) -> bool:
    """Whether ``scrub(data, normalized=True)`` skips Relay."""
    return only_lengths_in_meta(data.get("_meta")) and scrubber.unchanged_by_relay(data) is not None


def exact(value: dict) -> bytes:
    # Byte-exact comparison: dict equality would call 1 == 1.0 == True equal.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# -- the vocabulary ---------------------------------------------------------------------------------

KEYS = ["order", "id", "amount", "note", "value", "data", "name", "items", "formatted",
        "password", "passwd", "pass", "pwd", "secret", "my_secret", "sec", "api_key", "apiKey", "api-key",
        "api", "key", "auth", "author", "aut", "authorization", "token", "tok", "csrftoken", "session",
        "sessionid", "sess", "su", "sudo", "sub", "csrf", "xsrf-token", "otp", "OTP", "otpx", "two_factor",
        "two-factors", "credentials", "cred", "mysql_pwd", "private_key", "privatekey", "private",
        "cookie", "cookies", "Cookie", "set-cookie", "REMOTE_ADDR", "ip_address", "client_ip", "user.ip",
        "client.address", "http.request.header.cookie", "http.request.header.cookie.session",
        "loyalty", "my_loyalty_no", "member.no", "Member.No", "memberXno", "graphql", "variables",
        "pa\u017f\u017fword", "to\u212aen", "gen_ai.prompt", "emails", "bearer", "\u00fcser", "\u0131p"]
WORDS = ["hello", "", "true", "null", "undefined", "ord_7Hc2", "charge declined", "SKU-10023",
         "/home/alice/app.py", "/Users/bob/x", "C:\\Users\\carol\\x", "/srv/app/home.py",
         "a@b.co", "user@example.com", "x@y", "@example.com", "127.0.0.1", "203.0.113.42", "1.2.3",
         "999.1.1.1", "::1", "fe80::1%eth0", "2001:db8::8a2e:370:7334", "1:2:3:4:5:6:7:8", "10:30:00",
         "00:11:22:33:44:55", "https://user:pass@host.example/x", "https://host.example/x",
         "postgres://app@db/shop", "//a:b@c", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
         "-----BEGIN CERTIFICATE-----", "078-05-1120", "078-05-112", "4111 1111 1111 1111",
         "4111111111111111", "4111-1111-1111-1112", "378282246310005", "37828224631000",
         "4111\n1111\t1111 1111", "4111\u00a01111\u00a01111\u00a01111", "\u0664\u0661\u0661\u0661" * 4,
         "DE89370400440532013000", "de89370400440532013000", "GB82WEST12345698765432", "Bearer abc.def",
         "bearer", "token=abc", "tokens", "my token: x", "authentication failed", "otp", "two_factor",
         "loyalty", "member.no", "a\x00b", "4111\x0011111111111111", "sessionid=abc; theme=dark",
         "550e8400-e29b-41d4-a716-446655440000", "490154203237518", "\u212a", "\u017f",
         "12345678901234567890", "graphql", "p\u0430ssword"]
INTS = st.one_of(st.integers(-1000, 10**6), st.sampled_from([4111111111111111, 78051120, 2**63 - 1, 2**63, 2**64 - 1]))
FRAGMENT = st.sampled_from(WORDS)
SEPARATOR = st.sampled_from(["", " ", "-", "\n", ".", ":", "=", "/", "@"])
STRINGS = st.one_of(
    FRAGMENT,
    st.builds(lambda a, sep, b: f"{a}{sep}{b}", FRAGMENT, SEPARATOR, FRAGMENT),
    st.builds(lambda key, sep, word: f"{key}{sep}{word}", st.sampled_from(KEYS), SEPARATOR, FRAGMENT),
    st.from_regex(r"[0-9 \-]{8,24}", fullmatch=True),
    st.text(max_size=12),
)
SCALARS = st.one_of(STRINGS, INTS, st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())
KEY = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=3),
    st.tuples(st.sampled_from(KEYS), inner).map(list)), max_leaves=10)
PAIRS = st.one_of(st.dictionaries(KEY, STRINGS, max_size=3),
                  st.lists(st.tuples(st.sampled_from(KEYS), STRINGS).map(list), max_size=3))
REQUEST = st.fixed_dictionaries({"url": st.sampled_from(["https://shop.example/x", "https://u:p@shop.example/"])}, optional={
    "method": st.sampled_from(["GET", "POST"]), "headers": PAIRS, "cookies": st.one_of(PAIRS, STRINGS),
    "env": st.dictionaries(st.sampled_from(["REMOTE_ADDR", "SERVER_NAME"]), STRINGS, max_size=2),
    "data": VALUES, "query_string": st.one_of(STRINGS, PAIRS), "api_target": st.sampled_from(["graphql", "rest"]),
})
USER = st.fixed_dictionaries({}, optional={
    "id": STRINGS, "username": STRINGS, "email": STRINGS,
    "ip_address": st.sampled_from(["{{auto}}", "203.0.113.9", "::1", "not an ip"]), "data": VALUES})
FRAME = st.fixed_dictionaries({"function": st.sampled_from(["charge", "login"]), "filename": STRINGS,
                               "abs_path": STRINGS, "lineno": st.integers(1, 500)},
                              optional={"vars": st.dictionaries(KEY, VALUES, max_size=4),
                                        "context_line": STRINGS, "pre_context": st.lists(STRINGS, max_size=2)})
EXCEPTION = st.builds(lambda value, frames: {"values": [{"type": "Error", "value": value,
                                                         "stacktrace": {"frames": frames}}]},
                      STRINGS, st.lists(FRAME, min_size=1, max_size=2))
# Long lists and strings make the normalizer trim them and record that in _meta.
LONG = st.one_of(st.lists(STRINGS, min_size=8, max_size=30),
                 st.builds(lambda word, n, tail: word * n + tail, FRAGMENT, st.integers(50, 900), FRAGMENT))
RAW_EVENTS = st.fixed_dictionaries({"platform": st.sampled_from(["python", "javascript", "other"])}, optional={
    "extra": st.dictionaries(st.one_of(KEY, st.just("sys.argv")), st.one_of(VALUES, LONG), max_size=4),
    "tags": PAIRS,
    "user": USER,
    "request": REQUEST,
    "contexts": st.dictionaries(st.sampled_from(["app", "response", "custom", "trace"]),
                                st.dictionaries(KEY, VALUES, max_size=3), max_size=2),
    "breadcrumbs": st.lists(st.fixed_dictionaries({"message": STRINGS}, optional={"data": st.dictionaries(KEY, VALUES, max_size=2)}), max_size=2),
    "exception": EXCEPTION,
    "logentry": st.fixed_dictionaries({"formatted": STRINGS}),
    "message": STRINGS,
    "sdk": st.fixed_dictionaries({"name": st.just("sentry.python"), "version": st.just("2.0.0")},
                                 optional={"client_ip": st.sampled_from(["203.0.113.9", "{{auto}}"])}),
    "_meta": st.fixed_dictionaries({"extra": st.fixed_dictionaries(
        {"sys.argv": st.just({"": {"len": 13}})},
        optional={"data": st.just({"": {"len": 40}})})}),
    "modules": st.dictionaries(st.sampled_from(KEYS + ["django", "flask"]), st.sampled_from(["1.0.0", "2.75.0"]), max_size=3),
})
RECEIVED = st.one_of(st.floats(0, 4102444800, allow_nan=False), st.just(1795744412.0861635))


@pytest.mark.parametrize("name", list(SCRUBBERS))
def test_fast_path_gives_relays_output_on_generated_events(name: str):
    scrubber = SCRUBBERS[name]
    assert scrubber.has_fast_path

    @settings(max_examples=DIFFERENTIAL_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(RAW_EVENTS, RECEIVED)
    def check(raw: dict, received: float) -> None:
        data = pipeline_event(raw, received)
        fast = scrubber.scrub(data, normalized=True)
        relay = scrubber.scrub(data)
        assert exact(fast) == exact(relay)
        clean = fast_path_taken(scrubber, data)
        event(f"precheck: {'clean' if clean else 'maybe'}")
        if clean:
            assert exact({**data, "received": relay["received"]}) == exact(relay)

    check()


@settings(max_examples=max(DIFFERENTIAL_EXAMPLES, 300), deadline=None, database=None)
@given(st.one_of(st.floats(0, 253402300799, allow_nan=False), st.integers(0, 253402300799),
                 st.floats(1.6e9, 2.0e9), st.floats(0, 1)))
def test_received_is_rounded_exactly_as_relay_rounds_it(value: float):
    if relay_timestamp(value) is None:
        return  # not reproduced (an exponent in its shortest form): such events go to Relay
    relay = SCRUBBERS["defaults"].scrub({"received": value})["received"]
    assert exact({"r": relay_timestamp(value)}) == exact({"r": relay})


@pytest.mark.parametrize("value", [-1.5, 253402300800.0, 1e300, float("nan"), "2024-01-01T00:00:00Z", True, None])
def test_received_outside_the_reproduced_range_goes_to_relay(value):
    assert relay_timestamp(value) is None
    data = pipeline_event({"platform": "python"})
    data["received"] = value
    scrubber = SCRUBBERS["defaults"]
    assert exact(scrubber.scrub(data, normalized=True)) == exact(scrubber.scrub(data))


# -- real SDK events ------------------------------------------------------------------------------

def bench_events(count: int = 3) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from envelopes import capture  # the benchmark's real sentry-sdk error event
    finally:
        sys.path.pop(0)
    captured = capture()
    payload = next(part for part in captured.raw.split(b"\n") if part.startswith(b"{") and b'"exception"' in part)
    raw = orjson.loads(payload)
    # The SDK sends this process's sys.argv, which depends on how pytest was started (the path of a
    # test module named "test_secrets" would be a trigger): pin it to a typical command line.
    raw.setdefault("extra", {})["sys.argv"] = ["manage.py", "runserver", "0.0.0.0:8000"]
    return [pipeline_event(raw, 1795744412.0 + index / 7) for index in range(count)]


@pytest.mark.parametrize("name", list(SCRUBBERS))
def test_real_sdk_events_take_the_fast_path_and_match_relay(name: str):
    scrubber = SCRUBBERS[name]
    for data in bench_events():
        fast = scrubber.scrub(data, normalized=True)
        assert exact(fast) == exact(scrubber.scrub(data))
        # The benchmark event holds an IP in a local variable: only the IP configurations scrub it.
        assert fast_path_taken(scrubber, data) is not CONFIGS[name].scrub_ip_addresses


# -- every kind of trigger says "maybe" ----------------------------------------------------------

CARD = "4111 1111 1111 1111"
TRIGGERS = {
    "password key": {"extra": {"db_password": 1}},
    "password value": {"extra": {"note": "password reset for x"}},
    "secret": {"extra": {"client_secret": "x"}},
    "passwd": {"extra": {"PASSWD": "x"}},
    "api key": {"extra": {"x-api-key": "x"}},
    "apikey": {"extra": {"stripeApiKey": "x"}},
    "auth": {"request": {"url": "https://x/", "headers": {"Authorization": "Basic eDp5"}}},
    "credentials": {"extra": {"aws_credentials": ["x"]}},
    "mysql_pwd": {"extra": {"MYSQL_PWD": "x"}},
    "private key": {"extra": {"private-key": "x"}},
    "token key": {"extra": {"refresh_token": 5}},
    "token value": {"extra": {"note": "token=abc"}},
    "otp": {"extra": {"otp": "123456"}},
    "two factor": {"extra": {"flag": "Two-Factor"}},
    "long s": {"extra": {"pa\u017f\u017fword": "x"}},
    "kelvin sign": {"extra": {"api\u212aey": "x"}},
    "bearer": {"extra": {"header": "Bearer abc.def"}},
    "card": {"extra": {"card": CARD}},
    "card with escaped separators": {"extra": {"card": "4111\n1111\t1111\r1111"}},
    "card with wide digits": {"extra": {"card": "\u0664\u0661\u0661\u0661" * 4}},
    "card with no-break spaces": {"extra": {"card": "4111\u00a01111\u00a01111\u00a01111"}},
    "amex": {"extra": {"card": "3782-822463-10005"}},
    "iban": {"extra": {"account": "DE89370400440532013000"}},
    "iban with wide digits": {"extra": {"account": "DE\u0668\u0669370400440532013000"}},
    "ssn": {"extra": {"applicant": "SSN 078-05-1120"}},
    "pem": {"extra": {"deploy": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}},
    "url auth": {"extra": {"dsn": "postgres://app:s3cr3t@db:5432/shop"}},
    "nul": {"extra": {"note": "a\x00b"}},
    "session cookie": {"request": {"url": "https://x/", "cookies": {"sessionid": "abc"}}},
    "csrf cookie": {"request": {"url": "https://x/", "headers": {"Cookie": "csrftoken=abc"}}},
    "su cookie": {"request": {"url": "https://x/", "cookies": "su=abc"}},
    "cookie attribute": {"contexts": {"trace": {"data": {"http.request.header.cookie": "a=b"}}}},
    "email in the message": {"logentry": {"formatted": "mail alice@example.com failed"}},
    "graphql": {"request": {"url": "https://x/", "api_target": "graphql", "data": {"variables": {"a": 1}}}},
}
IP_TRIGGERS = {
    "ipv4": {"extra": {"client": "seen from 203.0.113.42"}},
    "ipv6": {"extra": {"client": "2001:db8::1"}},
    "ipv6 full": {"extra": {"client": "2001:0db8:85a3:0000:0000:8a2e:0370:7334"}},
    "ipv6 link-local": {"extra": {"client": "fe80:%eth0"}},
    "remote addr": {"request": {"url": "https://x/", "env": {"REMOTE_ADDR": "x"}}},
    "user ip": {"user": {"ip_address": "{{auto}}"}},
}
SENSITIVE_TRIGGERS = {
    "sensitive key": {"extra": {"LOYALTY_no": 1}},
    "sensitive value": {"extra": {"note": "your loyalty card"}},
    "sensitive dotted": {"extra": {"member.no": "x"}},
}


def _maybe(scrubber: Scrubber, raw: dict) -> bool:
    data = pipeline_event(raw)
    assert exact(scrubber.scrub(data, normalized=True)) == exact(scrubber.scrub(data))
    return not fast_path_taken(scrubber, data)


@pytest.mark.parametrize("raw", TRIGGERS.values(), ids=list(TRIGGERS))
def test_each_default_trigger_says_maybe(raw: dict):
    assert _maybe(SCRUBBERS["defaults"], raw)


@pytest.mark.parametrize("raw", IP_TRIGGERS.values(), ids=list(IP_TRIGGERS))
def test_each_ip_trigger_says_maybe(raw: dict):
    assert _maybe(SCRUBBERS["ip only"], raw)
    assert not _maybe(SCRUBBERS["defaults"], raw) or raw.get("user")  # "user" carries its own id word


@pytest.mark.parametrize("raw", SENSITIVE_TRIGGERS.values(), ids=list(SENSITIVE_TRIGGERS))
def test_each_sensitive_field_trigger_says_maybe(raw: dict):
    assert _maybe(SCRUBBERS["sensitive+safe"], raw)
    assert not _maybe(SCRUBBERS["defaults"], raw)


@pytest.mark.parametrize("raw", [
    {"extra": {"path": "/home/alice/app.py", "mac": "00:11:22:33:44:55", "uuid": "550e8400-e29b-41d4-a716-4466554400ab"}},
    {"user": {"email": "alice@example.com", "id": "7"}, "extra": {"client": "203.0.113.42"}},
    {"extra": {"idempotency_key": "order-1-charge", "session_length": 3, "tokenizer": None}},
])
def test_what_the_defaults_leave_alone_is_clean_and_relay_agrees(raw: dict):
    # User paths, MACs, UUIDs, e-mails outside the message and IPs are not in the defaults.
    scrubber = SCRUBBERS["defaults"]
    data = pipeline_event({"platform": "python", **raw})
    relay = scrubber.scrub(data)
    if "tokenizer" in raw.get("extra", {}):
        assert not fast_path_taken(scrubber, data)  # "token": the precheck is a superset
        return
    assert fast_path_taken(scrubber, data)
    assert exact({**data, "received": relay["received"]}) == exact(relay)


# -- which configurations get a precheck -----------------------------------------------------------

def test_only_analysed_configurations_get_a_fast_path():
    assert Scrubber(ScrubbingSettings(safe_fields=("extra.note",))).has_fast_path
    assert not Scrubber(ScrubbingSettings(pii_config={"applications": {"$string": ["@email"]}})).has_fast_path
    assert not Scrubber(ScrubbingSettings(sensitive_fields=('a"b',))).has_fast_path  # JSON would escape it
    assert not Scrubber(ScrubbingSettings(sensitive_fields=("n\u00e4me",))).has_fast_path
    assert not Scrubber(ScrubbingSettings(enabled=False)).has_fast_path  # no rules: Relay is never called
    configs = SCRUBBERS["defaults"].configs()
    assert precheck_for(configs + configs, ()) is None
    unknown = [{"applications": {"$string": ["@userpath:replace"]}}]
    assert precheck_for(unknown, ()) is None
    deep = [{"applications": {"**": ["@anything:remove"]}}]
    assert precheck_for(deep, ()) is None


def test_the_installed_relay_is_the_analysed_one():
    # After upgrading sentry-relay, re-read relay-pii's rules and rerun this module with many
    # examples before raising ANALYSED_RELAY_VERSION; until then every event goes to Relay.
    from importlib.metadata import version
    assert version("sentry-relay") == ANALYSED_RELAY_VERSION


def test_events_with_meta_take_the_fast_path_and_match_relay():
    scrubber = SCRUBBERS["defaults"]
    # As sentry-sdk sends a long sys.argv: cut to 10 items, the original length noted in _meta.
    data = pipeline_event({"extra": {"sys.argv": [f"--opt{i}" for i in range(10)]},
                           "_meta": {"extra": {"sys.argv": {"": {"len": 13}}}}})
    assert data["_meta"] == {"extra": {"sys.argv": {"": {"len": 13}}}}
    assert fast_path_taken(scrubber, data)
    assert exact(scrubber.scrub(data, normalized=True)) == exact(scrubber.scrub(data))
    # Errors, remarks and original values in _meta: Relay rewrites some of them, so Relay runs.
    for raw in ({"user": {"ip_address": "not an ip"}}, {"contexts": {"trace": {}}}):
        other = pipeline_event(raw)
        assert "_meta" in other and not fast_path_taken(scrubber, other)
        assert exact(scrubber.scrub(other, normalized=True)) == exact(scrubber.scrub(other))


def test_unnormalized_events_always_go_to_relay():
    scrubber = SCRUBBERS["defaults"]
    raw = {"extra": {"when": "yesterday"}, "timestamp": "not a time"}
    assert scrubber.scrub(raw) == scrubber.scrub(raw, normalized=False)


@pytest.mark.parametrize("number", [90071992547.59375, 0.30000000000000004, 1e300, 5e-324, 123456789.12345679])
def test_floats_relay_reads_back_differently_go_to_relay(number: float):
    # Relay's JSON parser rounds some decimals twice: such an event comes back one ulp off.
    scrubber = SCRUBBERS["defaults"]
    data = pipeline_event({"extra": {"n": number, "ok": 1.5}})
    assert exact(scrubber.scrub(data, normalized=True)) == exact(scrubber.scrub(data))
    relay = scrubber.scrub(data)
    if relay["extra"]["n"] != data["extra"]["n"]:
        assert fast_path_taken(scrubber, data) is False


@pytest.mark.parametrize("text", ['say "hi"', "ends with a backslash \\", '\\"', 'a \\\\" b', '"', "\\\\"])
@pytest.mark.parametrize("number", [23855787612.557446, 99261797805.43045, 9.179365601667923e+17,
                                    3.3341861289520693e+50, 1.3851012640551396e+100])
def test_floats_next_to_escaped_quotes_and_backslashes_say_maybe(text: str, number: float):
    # Relay's parser reads these floats back one ulp off. The float check only scans outside
    # strings; escaped quotes and backslashes must not shift what it takes for "outside".
    precheck = SCRUBBERS["defaults"]._precheck
    for shape in ({"a": text, "n": number}, [text, number], {text: number}, [{"k": text}, number, text]):
        event = {"extra": {"data": shape}}
        assert precheck.could_change(event, orjson.dumps(event)) is True, shape
        calm = orjson.loads(orjson.dumps(event).replace(orjson.dumps(number), b"1.5"))
        assert precheck.could_change(calm, orjson.dumps(calm)) is False, shape


@settings(max_examples=max(DIFFERENTIAL_EXAMPLES, 300), deadline=None, database=None)
@given(st.floats(1e15, 1e308), st.floats(1e-300, 1e-5), st.sampled_from(["", 'a "quoted" word', "back\\slash"]))
def test_large_and_small_floats_give_relays_output(big: float, small: float, text: str):
    # orjson writes these with an exponent ("1.2345e+25", "5e-7"); Relay reads some back one ulp off.
    scrubber = SCRUBBERS["defaults"]
    data = pipeline_event({"extra": {"big": big, "small": small, "text": text, "list": [big, text, small]}})
    assert exact(scrubber.scrub(data, normalized=True)) == exact(scrubber.scrub(data))


@settings(max_examples=max(DIFFERENTIAL_EXAMPLES, 300), deadline=None, database=None)
@given(st.floats(1.0, 10.0), st.integers(16, 300), st.sampled_from([1, -1]))
def test_every_exponent_float_relay_misreads_says_maybe(mantissa: float, exponent: int, sign: int):
    # orjson writes positive exponents with a sign ("9.179365601667923e+17"); a check that only
    # knew "e16" and "e-7" let such floats through while Relay changed them by one ulp.
    scrubber = SCRUBBERS["defaults"]
    event = {"extra": {"n": sign * mantissa * 10.0 ** exponent, "note": 'a "quoted" word'}}
    if scrubber.scrub(event)["extra"]["n"] != event["extra"]["n"]:
        assert scrubber._precheck.could_change(event, orjson.dumps(event)) is True


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_orjson_writes_every_exponent_with_a_sign(number: float):
    # The float check finds exponents as "digit, e, sign, digit": it relies on this format.
    text = orjson.dumps(number)
    assert b"E" not in text
    if b"e" in text:
        mantissa, exponent = text.split(b"e")
        assert mantissa[-1:].isdigit() and exponent[:1] in (b"+", b"-") and exponent[1:].isdigit()
