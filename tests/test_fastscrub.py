"""Differential tests: ``minisentry.fastscrub`` against Relay's own ``pii_strip_event``.

Every event is normalized by Relay's ``StoreNormalizer`` first (as the process stage does), then
scrubbed by both with the same settings; the results must be equal once ``_meta`` is removed
(fastscrub writes no ``_meta``).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import sentry_relay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minisentry.fastscrub import Unsupported, scrub_defaults

NORMALIZER = sentry_relay.StoreNormalizer(project_id=1)
CARD = "4111 1111 1111 1111"
IBAN = "DE89370400440532013000"
SSN = "078-05-1120"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n"
       "-----END RSA PRIVATE KEY-----")


def _strip_meta(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_meta(v) for k, v in value.items() if k != "_meta"}
    if isinstance(value, list):
        return [_strip_meta(v) for v in value]
    return value


def relay_scrub(event: dict, **kw: Any) -> dict:
    config = sentry_relay.convert_datascrubbing_config({
        "scrubData": True, "scrubDefaults": True,
        "scrubIpAddresses": kw.get("scrub_ip_addresses", False),
        "sensitiveFields": list(kw.get("sensitive_fields", ())),
        "excludeFields": list(kw.get("safe_fields", ())),
    })
    return sentry_relay.pii_strip_event(config, event)


def assert_same(event: dict, *, normalize: bool = True, **kw: Any) -> dict:
    event = NORMALIZER.normalize_event(event) if normalize else event
    before = copy.deepcopy(event)
    fast = scrub_defaults(event, **kw)
    assert event == before  # the input is not modified
    assert _strip_meta(fast) == _strip_meta(relay_scrub(event, **kw))
    return fast


def error(frame_vars: dict, **event: Any) -> dict:
    frame = {"module": "shop.pay", "function": "charge", "filename": "shop/pay.py",
             "abs_path": "/srv/shop/pay.py", "lineno": 12, "in_app": True, "vars": frame_vars}
    return {"platform": "python", "level": "error",
            "exception": {"values": [{"type": "PaymentError", "value": f"declined {CARD}",
                                      "stacktrace": {"frames": [frame]}}]}, **event}


SECRETS = {
    "password": "hunter2", "db_secret": "s3", "api_key": "k", "apikey": "k", "auth": "a",
    "mysql_pwd": "m", "privateKey": "p", "two_factor": "2", "otp": "1", "mytoken": "t",
    "TOKEN": "t", "card": CARD, "card_dash": CARD.replace(" ", "-"), "iban": IBAN, "ssn": SSN,
    "pem": PEM, "bearer": "Bearer eyJhbGciOi.x", "dsn": "postgres://app:s3cr3tpw@db:5432/shop",
    "msg": "my password is hunter2", "tok": "token=abc", "plain": "token abc", "email": "a@b.example",
    "ip": "seen from 198.51.100.7 and 2001:db8::1", "order": "ord_1", "n": 4111111111111111,
    "pw_number": 5, "secret_obj": {"a": 1}, "auth_list": [1, 2], "passwd": True, "nothing": None,
    "paths": "/home/alice/x.py", "empty": "", "true": "true",
}

CASES = {
    "extra": {"extra": SECRETS},
    "frame vars": error(SECRETS),
    "nested vars": error({"request": {"headers": {"Authorization": "Bearer abc"}, "password": "x"},
                          "rows": [["password", "x"], ["a", "b"], ["password", 5],
                                   ["k", {"password": "z"}], ["a", "my password"], ["password", ""]],
                          "triple": ["password", "x", "y"]}),
    "headers and cookies": {"request": {
        "url": "https://u:p@shop.example.com/checkout?card=" + CARD, "method": "POST",
        "headers": {"Authorization": "Bearer eyJhbGciOi", "Accept": "text/html", "X-Token": "t",
                    "User-Agent": f"{CARD} password", "Cookie": "sessionid=abc123; theme=dark",
                    "X-Forwarded-For": "203.0.113.42"},
        "query_string": f"card={CARD}&q=1&password=x",
        "data": {"password": "x", "card": CARD, "note": "ok"}, "fragment": SSN,
        "env": {"REMOTE_ADDR": "203.0.113.42", "SECRET_KEY": "x", "HOME": "/home/alice"}}},
    "request cookies": {"request": {"cookies": {"csrftoken": "tok", "session": "s1", "lang": "de",
                                                "SessionId": "a", "CSRF": "b", "__session": "c"}}},
    "cookies anywhere": {"extra": {"cookies": {"session": "a", "Session": "b", "foo": "c", "sudo": 5,
                                               "su": {"x": 1}},
                                   "a": {"cookies": {"sessionid": "a"}}},
                         "contexts": {"os": {"name": "Linux", "cookies": {"session": "s"}, "password": "p"}}},
    "contexts": {"contexts": {
        "os": {"name": CARD, "build": "password"}, "device": {"name": CARD, "model": "x"},
        "runtime": {"name": "CPython", "raw_description": CARD}, "app": {"app_name": CARD},
        "browser": {"name": CARD}, "gpu": {"name": CARD}, "culture": {"locale": CARD},
        "trace": {"trace_id": "6f124c4266b64f6cb3ee7002d76faa5b", "span_id": "9aa051d946af18d9",
                  "op": CARD, "data": {"password": "x", "card": CARD}},
        "response": {"status_code": 500, "headers": [["Set-Cookie", "a"], ["X-Auth", "x"]],
                     "cookies": [["session", "s"]], "data": {"card": CARD}},
        "custom": {"type": "custom", "password": "x", "nested": {"card": CARD, "secret": {"a": 1}}},
        "bare": {"api_key": "k"}}},
    "breadcrumbs": {"breadcrumbs": {"values": [
        {"type": "http", "category": CARD, "message": f"paid with {CARD}",
         "data": {"url": "https://u:pw@x.example/", "password": "x", "n": 5}},
        {"message": "password reset", "data": {"auth": {"a": 1}}}]}},
    "messages": {"logentry": {"formatted": f"password {CARD} a@b.example Bearer xyz {IBAN} {SSN} "
                                           "postgres://u:p@h/d",
                              "params": [CARD, {"secret": "x"}]}},
    "message with email only": {"message": "mail from jane.doe@example.com failed"},
    "user": {"user": {"id": CARD, "email": "jane@example.com", "username": "jdoe", "name": SSN,
                      "ip_address": "203.0.113.42", "segment": CARD, "geo": {"city": CARD},
                      "data": {"password": "x", "plan": "pro"}}},
    "mechanism and template": {
        "exception": {"values": [{"type": "E", "value": f"v {CARD}",
                                  "mechanism": {"type": "x", "description": CARD, "help_link": "http://a:b@c/",
                                                "data": {"secret": "s", "card": CARD}}}]},
        "template": {"filename": CARD, "abs_path": "/x/" + SSN, "context_line": CARD, "lineno": 1}},
    "threads": {"threads": {"values": [{"id": 1, "name": CARD, "stacktrace": {"frames": [
        {"function": CARD, "vars": {"password": "x", "c": CARD}}]}}]},
        "stacktrace": {"frames": [{"function": "f", "vars": {"iban": IBAN}}]}},
    "debug meta and tags untouched": {"debug_meta": {"images": [{"type": "symbolic", "code_file": "/home/a/" + CARD,
                                                                 "debug_id": "6f124c42-66b6-4f6c-b3ee-7002d76faa5b"}]},
                                      "tags": {"password": "x", "card": CARD}, "fingerprint": [CARD],
                                      "transaction": CARD, "culprit": CARD},
    "sdk": {"sdk": {"name": "sentry.python", "version": "2.75.0", "client_ip": "203.0.113.42"}},
    "chunk interplay": {"extra": {"a": f"Bearer {CARD}", "b": f"{CARD} password", "c": f"{SSN}-{CARD}",
                                  "d": "x\x00y 4111111111111111", "e": f"{PEM} {CARD}",
                                  "f": "http://u:4111111111111111@h/"}},
}


@pytest.mark.parametrize("scrub_ip", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_written_events_match_relay(name: str, scrub_ip: bool):
    assert_same(copy.deepcopy(CASES[name]), scrub_ip_addresses=scrub_ip)


def test_defaults_really_scrub():
    fast = assert_same(copy.deepcopy(CASES["extra"]))
    assert fast["extra"]["password"] == "[Filtered]" and fast["extra"]["card"] == "[Filtered]"
    assert fast["extra"]["secret_obj"] is None
    fast = assert_same(copy.deepcopy(CASES["messages"]))
    assert fast["logentry"]["formatted"].startswith("password [creditcard] [email] Bearer [token]")


@pytest.mark.parametrize(("sensitive", "safe"), [
    (("loyalty",), ()), (("Loyalty", "a.b", "x y", "(q"), ()), ((), ("password_policy",)),
    ((), ("safe", "a.b")), (("card",), ("card",)), ((), ("Card", "session")),
])
def test_sensitive_and_safe_fields_match_relay(sensitive: tuple, safe: tuple):
    event = error({"loyalty_number": "LN-99", "Loyalty": 5, "x": "my loyalty card", "loyalty": {"a": 1},
                   "password_policy": "p", "pp": {"password_policy": {"password": "x"}},
                   "safe": {"password": "x", "card": CARD}, "Safe": CARD, "a": {"b": CARD}, "card": CARD,
                   "cookies": {"session": "s"}, "(q)": "v", "x y": CARD},
                  extra={"a.b": CARD, "Card": CARD})
    for scrub_ip in (False, True):
        assert_same(copy.deepcopy(event), sensitive_fields=sensitive, safe_fields=safe,
                    scrub_ip_addresses=scrub_ip)


def _real_events() -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from envelopes import make_bodies

    from minisentry.decoding import BodyDecoder
    from minisentry.envelope import parse_envelope

    events = []
    for body in make_bodies(3):
        decoder = BodyDecoder("br", 10_000_000)
        decoder.feed(body)
        for item in parse_envelope(decoder.finish()).items:
            if item.type == "event":
                events.append(NORMALIZER.normalize_event(item.json()))
    return events


@pytest.mark.parametrize("scrub_ip", [False, True])
def test_real_sdk_events_match_relay(scrub_ip: bool):
    for event in _real_events():
        assert_same(event, normalize=False, scrub_ip_addresses=scrub_ip)
        frames = event["exception"]["values"][0]["stacktrace"]["frames"]
        frames[-1]["vars"].update({"password": "'hunter2'", "card": repr(CARD), "client": "'10.1.2.3'"})
        assert_same(event, normalize=False, scrub_ip_addresses=scrub_ip)


def test_unsupported_shapes_raise():
    with pytest.raises(Unsupported):
        scrub_defaults({"spans": []})
    with pytest.raises(Unsupported):
        scrub_defaults({"contexts": {"r": {"type": "replay"}}})
    with pytest.raises(Unsupported):
        scrub_defaults({}, safe_fields=("$string",))


# -- generated events ------------------------------------------------------------------------------

KEYS = st.sampled_from(["password", "Password", "secret", "api_key", "auth", "token", "mytoken", "otp",
                        "two-factor", "session", "sessionid", "csrf", "cookies", "card", "data", "x",
                        "user", "id", "value", "REMOTE_ADDR", "loyalty", "safe", "name", "0", "a b"])
STRINGS = st.one_of(
    st.sampled_from([CARD, CARD.replace(" ", ""), IBAN, SSN, PEM, "Bearer abc.def", "bearer\tq",
                     "postgres://u:pw@h:1/d", "https://a:b@c.example", "token=1", "my password",
                     "10.0.0.1", "::1", "fe80::1%eth0", "2001:db8::ff00:42:8329", "a@b.example",
                     "", "true", "null", "[Filtered]", "ord_1", "'4242'", "/home/jane/x"]),
    st.text(alphabet="0123456789 -:.@/abBDEtokenpsw\n", max_size=30),
)
JSON = st.recursive(
    st.one_of(STRINGS, st.integers(-10**17, 10**17), st.booleans(), st.none()),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4),
                               st.tuples(KEYS, children).map(list)),
    max_leaves=12,
)


@st.composite
def events(draw) -> dict:
    event: dict = {"platform": "python", "level": "error"}
    if draw(st.booleans()):
        event["extra"] = draw(st.dictionaries(KEYS, JSON, max_size=5))
    if draw(st.booleans()):
        event["exception"] = {"values": [{"type": "E", "value": draw(STRINGS), "stacktrace": {"frames": [
            {"function": "f", "filename": draw(STRINGS), "vars": draw(st.dictionaries(KEYS, JSON, max_size=5))}]}}]}
    if draw(st.booleans()):
        event["request"] = {"url": "https://x.example/", "headers": draw(st.dictionaries(KEYS, STRINGS, max_size=3)),
                            "cookies": draw(st.dictionaries(KEYS, STRINGS, max_size=3)),
                            "data": draw(JSON), "env": draw(st.dictionaries(KEYS, STRINGS, max_size=3))}
    if draw(st.booleans()):
        event["user"] = {"id": draw(STRINGS), "ip_address": draw(st.sampled_from(["1.2.3.4", "::1", "{{auto}}"])),
                         "data": draw(st.dictionaries(KEYS, JSON, max_size=3))}
    if draw(st.booleans()):
        event["contexts"] = {draw(st.sampled_from(["os", "device", "trace", "custom", "cookies"])):
                             draw(st.dictionaries(KEYS, JSON, max_size=4))}
    if draw(st.booleans()):
        event["breadcrumbs"] = {"values": [{"message": draw(STRINGS), "data": draw(st.dictionaries(KEYS, JSON, max_size=3))}]}
    if draw(st.booleans()):
        event["logentry"] = {"formatted": " ".join(draw(st.lists(STRINGS, max_size=4)))}
    return event


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), scrub_ip=st.booleans(), sensitive=st.sampled_from([(), ("loyalty",), ("card", "x")]),
       safe=st.sampled_from([(), ("safe",), ("password", "cookies")]))
def test_generated_events_match_relay(event: dict, scrub_ip: bool, sensitive: tuple, safe: tuple):
    normalized = NORMALIZER.normalize_event(event)
    try:
        scrub_defaults(normalized, scrub_ip_addresses=scrub_ip, sensitive_fields=sensitive, safe_fields=safe)
    except Unsupported:
        return
    assert_same(normalized, normalize=False, scrub_ip_addresses=scrub_ip, sensitive_fields=sensitive,
                safe_fields=safe)
