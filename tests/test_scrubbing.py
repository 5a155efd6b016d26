"""Behaviour of ``minisentry.scrubbing``: Sentry's server-side PII scrubbing through Relay.

Every event is first normalized by Relay's ``StoreNormalizer``, as the process stage does, so the
scrubber sees what it will see in production.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import Any

import orjson
import pytest
import sentry_relay
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.scrubber import EventScrubber
from sentry_sdk.transport import Transport

from minisentry.errors import ConfigError, MinisentryError
from minisentry.scrubbing import (
    Scrubber,
    ScrubbingError,
    ScrubbingSettings,
    merge_pii_configs,
    scrubber_for,
)

NORMALIZER = sentry_relay.StoreNormalizer(project_id=1)
DEFAULTS = Scrubber(ScrubbingSettings())
CARD = "4111 1111 1111 1111"
IBAN = "DE89370400440532013000"
SSN = "078-05-1120"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n"
       "-----END RSA PRIVATE KEY-----")


def normalized(event: dict) -> dict:
    return NORMALIZER.normalize_event(event)


def python_error(frame_vars: dict | None = None, **event: Any) -> dict:
    """A normalized Python error event with one in-app frame holding ``frame_vars``."""
    frame = {"module": "shop.pay", "function": "charge", "filename": "shop/pay.py",
             "abs_path": "/srv/shop/pay.py", "lineno": 12, "in_app": True}
    if frame_vars is not None:
        frame["vars"] = frame_vars
    return normalized({"platform": "python", "level": "error",
                       "exception": {"values": [{"type": "PaymentError", "value": "declined",
                                                 "stacktrace": {"frames": [frame]}}]}, **event})


def frame_vars(event: dict) -> dict:
    return event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]


def frame_meta(event: dict) -> dict:
    return event["_meta"]["exception"]["values"]["0"]["stacktrace"]["frames"]["0"]["vars"]


def remarks(meta: dict) -> list[str]:
    """The rule ids Relay recorded for one field (``_meta...{"": {"rem": [[rule, kind, ...]]}}``)."""
    return [remark[0] for remark in meta[""]["rem"]]


# -- the defaults ----------------------------------------------------------------------------------

def test_password_keys_in_extra_are_filtered():
    event = DEFAULTS.scrub(normalized({"extra": {"password": "hunter2", "db_secret": "s3",
                                                 "api_key": "k", "order": "ord_1"}}))
    assert event["extra"] == {"password": "[Filtered]", "db_secret": "[Filtered]",
                              "api_key": "[Filtered]", "order": "ord_1"}
    assert remarks(event["_meta"]["extra"]["password"]) == ["@password:filter"]
    assert event["_meta"]["extra"]["password"][""]["len"] == len("hunter2")


def test_authorization_header_and_session_cookies_are_filtered():
    event = DEFAULTS.scrub(normalized({"request": {
        "url": "https://shop.example.com/checkout", "method": "POST",
        "headers": {"Authorization": "Bearer eyJhbGciOi", "Accept": "text/html",
                    "Cookie": "sessionid=abc123; theme=dark"},
    }}))
    request = event["request"]
    headers = dict(request["headers"])
    assert headers["Authorization"] == "[Filtered]"
    assert headers["Accept"] == "text/html"
    assert remarks(event["_meta"]["request"]["headers"]["1"]["1"]) == ["@bearer:filter"]  # sorted by name
    # The normalizer moves the Cookie header into ``cookies``; session cookies are filtered there.
    assert request["cookies"] == [["sessionid", "[Filtered]"], ["theme", "dark"]]
    stored = orjson.dumps(event).decode()
    assert "abc123" not in stored and "eyJhbGciOi" not in stored


def test_csrf_and_session_cookies_in_request_cookies_are_filtered():
    event = DEFAULTS.scrub(normalized({"request": {
        "url": "https://shop.example.com/", "cookies": {"csrftoken": "tok", "session": "s1", "lang": "de"}}}))
    assert event["request"]["cookies"] == [["csrftoken", "[Filtered]"], ["lang", "de"], ["session", "[Filtered]"]]


def test_credit_card_and_iban_in_message_and_local_variables():
    event = DEFAULTS.scrub(python_error({"card": CARD, "iban": IBAN, "amount": 1200},
                                        logentry={"formatted": f"charge {CARD} from {IBAN} failed"}))
    assert event["logentry"]["formatted"] == "charge [creditcard] from [iban] failed"
    assert remarks(event["_meta"]["logentry"]["formatted"]) == ["@creditcard:replace", "@iban:replace"]
    assert frame_vars(event) == {"card": "[Filtered]", "iban": "[Filtered]", "amount": 1200}
    assert remarks(frame_meta(event)["card"]) == ["@creditcard:filter"]
    assert remarks(frame_meta(event)["iban"]) == ["@iban:filter"]


def test_exception_values_are_not_scrubbed_by_the_defaults():
    # Sentry's defaults skip ``$error.value`` (and frame paths, debug_meta, logentry.formatted's
    # key rules): a card number in an exception message stays. Advanced rules can reach it.
    event = python_error()
    event["exception"]["values"][0]["value"] = f"declined {CARD}"
    assert DEFAULTS.scrub(event)["exception"]["values"][0]["value"] == f"declined {CARD}"
    advanced = Scrubber(ScrubbingSettings(pii_config={"applications": {"$error.value": ["@creditcard"]}}))
    assert advanced.scrub(event)["exception"]["values"][0]["value"] == "declined [creditcard]"


def test_pem_private_key_body_is_filtered():
    event = DEFAULTS.scrub(normalized({"extra": {"deploy_key": PEM}}))
    assert event["extra"]["deploy_key"] == (
        "-----BEGIN RSA PRIVATE KEY-----\n[Filtered]\n-----END RSA PRIVATE KEY-----")
    assert remarks(event["_meta"]["extra"]["deploy_key"]) == ["@pemkey:filter"]


def test_url_credentials_are_filtered():
    event = DEFAULTS.scrub(python_error({"dsn": "postgres://app:s3cr3tpw@db.internal:5432/shop",
                                         "url": "https://user:pass@host.example/x"}))
    assert frame_vars(event) == {"dsn": "postgres://app:[Filtered]@db.internal:5432/shop",
                                 "url": "https://user:[Filtered]@host.example/x"}
    assert remarks(frame_meta(event)["url"]) == ["@urlauth:legacy"]


def test_user_paths_are_kept_by_the_defaults_and_replaced_by_the_userpath_rule():
    # Sentry's "@common:filter" lists "@userpath:filter", but Relay defines no such rule, so the
    # server-side defaults leave user paths alone; the advanced rule "@userpath" replaces them.
    paths = {"unix": "/home/alice/shop/pay.py", "mac": "/Users/alice/shop/pay.py",
             "windows": "C:\\Users\\alice\\shop\\pay.py"}
    event = normalized({"extra": paths})
    assert DEFAULTS.scrub(event)["extra"] == paths
    userpath = Scrubber(ScrubbingSettings(pii_config={"applications": {"$string": ["@userpath"]}}))
    assert userpath.scrub(event)["extra"] == {"unix": "/home/[user]/shop/pay.py",
                                              "mac": "/Users/[user]/shop/pay.py",
                                              "windows": "C:\\Users\\[user]\\shop\\pay.py"}


def test_us_social_security_numbers():
    event = DEFAULTS.scrub(normalized({"logentry": {"formatted": f"ssn {SSN} rejected"},
                                       "extra": {"applicant": f"SSN: {SSN}"}}))
    assert event["logentry"]["formatted"] == "ssn [us-ssn] rejected"
    assert event["extra"]["applicant"] == "SSN: [Filtered]"
    assert remarks(event["_meta"]["extra"]["applicant"]) == ["@usssn:filter"]


def test_an_event_without_pii_comes_back_unchanged():
    event = python_error({"order_id": "ord_7Hc2", "amount": 1200, "items": ["SKU-1", "SKU-2"]},
                         extra={"plan": "business"}, tags={"region": "eu"})
    assert DEFAULTS.scrub(event) == event


# -- IP addresses, sensitive and safe fields -------------------------------------------------------

IP_EVENT = {"user": {"id": "7", "ip_address": "203.0.113.42"},
            "request": {"url": "https://shop.example.com/", "env": {"REMOTE_ADDR": "203.0.113.42"}},
            "extra": {"client": "seen from 198.51.100.7"}}


def test_ip_addresses_are_kept_by_default():
    event = DEFAULTS.scrub(normalized(IP_EVENT))
    assert event["user"]["ip_address"] == "203.0.113.42"
    assert event["request"]["env"]["REMOTE_ADDR"] == "203.0.113.42"
    assert event["extra"]["client"] == "seen from 198.51.100.7"


def test_scrub_ip_addresses_removes_known_ip_fields_and_replaces_ips_in_strings():
    event = Scrubber(ScrubbingSettings(scrub_ip_addresses=True)).scrub(normalized(IP_EVENT))
    assert event["user"].get("ip_address") is None
    assert event["request"]["env"]["REMOTE_ADDR"] is None
    assert event["extra"]["client"] == "seen from [ip]"
    assert "@anything:remove" in remarks(event["_meta"]["user"]["ip_address"])
    assert "203.0.113.42" not in orjson.dumps(event).decode()


def test_sensitive_fields_add_keys():
    event = python_error({"order_id": "ord_1", "loyalty_number": "LN-99", "amount": 5})
    scrubbed = Scrubber(ScrubbingSettings(sensitive_fields=("loyalty",))).scrub(event)
    # Relay matches a sensitive field as a substring of the key.
    assert frame_vars(scrubbed) == {"order_id": "ord_1", "loyalty_number": "[Filtered]", "amount": 5}
    assert remarks(frame_meta(scrubbed)["loyalty_number"]) == ["strip-fields"]


def test_safe_fields_keep_a_field_the_defaults_would_filter():
    event = normalized({"extra": {"password_policy": "min 12 chars", "password": "hunter2"}})
    scrubbed = Scrubber(ScrubbingSettings(safe_fields=("password_policy",))).scrub(event)
    assert scrubbed["extra"] == {"password_policy": "min 12 chars", "password": "[Filtered]"}
    assert DEFAULTS.scrub(event)["extra"]["password_policy"] == "[Filtered]"


def test_disabled_leaves_the_event_alone():
    event = normalized({**IP_EVENT, "extra": {"password": "hunter2", "card": CARD}})
    scrubber = Scrubber(ScrubbingSettings(enabled=False, sensitive_fields=("card",)))
    assert not scrubber.active
    assert scrubber.scrub(event) is event


def test_ip_scrubbing_is_independent_of_enabled_as_in_sentry():
    # Relay's conversion adds the IP rules whenever scrubIpAddresses is set, scrubData or not.
    event = normalized({**IP_EVENT, "extra": {"password": "hunter2"}})
    scrubbed = Scrubber(ScrubbingSettings(enabled=False, scrub_ip_addresses=True)).scrub(event)
    assert scrubbed["user"].get("ip_address") is None
    assert scrubbed["extra"]["password"] == "hunter2"


def test_disabled_still_applies_advanced_rules_as_sentry_does():
    # Sentry's scrubData only governs the simple settings; a project's advanced rules still run.
    settings = ScrubbingSettings(enabled=False, pii_config={"applications": {"extra.card": ["@anything:remove"]}})
    event = Scrubber(settings).scrub(normalized({"extra": {"password": "hunter2", "card": CARD}}))
    assert event["extra"] == {"password": "hunter2", "card": None}


# -- advanced rules ------------------------------------------------------------------------------

ORDER_RULES = {
    "rules": {"order_ids": {"type": "pattern", "pattern": r"ord_[A-Za-z0-9]+",
                            "redaction": {"method": "replace", "text": "[order]"}}},
    "applications": {"$frame.vars.note || extra.note": ["order_ids"]},
}


def test_custom_regex_rule_applies_to_its_selector_only():
    event = python_error({"note": "refund ord_7Hc2 please", "other": "ord_7Hc2"},
                         extra={"note": "see ord_99", "other": "ord_99"})
    scrubbed = Scrubber(ScrubbingSettings(pii_config=ORDER_RULES)).scrub(event)
    assert frame_vars(scrubbed) == {"note": "refund [order] please", "other": "ord_7Hc2"}
    assert scrubbed["extra"] == {"note": "see [order]", "other": "ord_99"}
    # Sentry prefixes a project's own rule names; that is what _meta records.
    assert remarks(frame_meta(scrubbed)["note"]) == ["project:order_ids"]
    assert scrubbed["_meta"]["extra"]["note"][""]["rem"][0][1:] == ["s", 4, 11]


def test_only_advanced_rules_when_defaults_are_off():
    settings = ScrubbingSettings(scrub_defaults=False, pii_config=ORDER_RULES)
    scrubber = Scrubber(settings)
    assert len(scrubber.configs()) == 1  # nothing left of the simple settings
    event = scrubber.scrub(normalized({"extra": {"note": "ord_1", "password": "hunter2"}}))
    assert event["extra"] == {"note": "[order]", "password": "hunter2"}


def test_advanced_rules_run_before_the_defaults():
    # As in Sentry: the project's rules first, then the data-scrubbing settings. A card masked by
    # an advanced rule is no longer a card number when the defaults look at it.
    settings = ScrubbingSettings(pii_config={"applications": {"extra.card": ["@creditcard:mask"]}})
    configs = Scrubber(settings).configs()
    assert configs[0] == {"applications": {"extra.card": ["@creditcard:mask"]}}
    assert configs[1] == sentry_relay.convert_datascrubbing_config(settings.datascrubbing_config())
    event = Scrubber(settings).scrub(normalized({"extra": {"card": CARD}}))
    assert event["extra"]["card"] == "*" * len(CARD)  # masked, not "[Filtered]" by the defaults
    assert remarks(event["_meta"]["extra"]["card"]) == ["@creditcard:mask"]


def test_merge_prefixes_custom_rules_and_their_references_like_sentry():
    org = {"rules": {"a": {"type": "anything", "redaction": {"method": "remove"}}},
           "applications": {"$string": ["a", "@ip"]}}
    project = {"rules": {"a": {"type": "pattern", "pattern": "x", "redaction": {"method": "replace"}},
                         "both": {"type": "multiple", "rules": ["a", "@email"]},
                         "alias": {"type": "alias", "rule": "a"}},
               "applications": {"$string": ["both"], "extra.x": ["alias"]}}
    merged = merge_pii_configs([("organization:", org), ("project:", None), ("project:", project)])
    assert set(merged["rules"]) == {"organization:a", "project:a", "project:both", "project:alias"}
    assert merged["rules"]["project:both"]["rules"] == ["project:a", "@email"]
    assert merged["rules"]["project:alias"]["rule"] == "project:a"
    assert merged["applications"] == {"$string": ["organization:a", "@ip", "project:both"],
                                      "extra.x": ["project:alias"]}
    assert project["rules"]["both"]["rules"] == ["a", "@email"]  # inputs untouched
    sentry_relay.validate_pii_config(json.dumps(merged))


# -- configuration -------------------------------------------------------------------------------

def test_from_mapping_reads_a_config_table():
    settings = ScrubbingSettings.from_mapping({
        "scrub_ip_addresses": True, "sensitive_fields": ["loyalty"], "safe_fields": ["sku"],
        "pii_config": ORDER_RULES,
    })
    assert settings == ScrubbingSettings(scrub_ip_addresses=True, sensitive_fields=("loyalty",),
                                         safe_fields=("sku",), pii_config=ORDER_RULES)
    assert ScrubbingSettings.from_mapping({}) == ScrubbingSettings()


def test_from_mapping_accepts_pii_config_as_json_text():
    settings = ScrubbingSettings.from_mapping({"pii_config": json.dumps(ORDER_RULES)})
    assert settings.pii_config == ORDER_RULES


@pytest.mark.parametrize(("raw", "message"), [
    ({"scrub_ip": True}, "config: unknown key 'scrubbing.scrub_ip'"),
    ({"excludeFields": []}, "unknown key 'scrubbing.excludeFields'"),
    ({"enabled": "yes"}, "scrubbing.enabled must be bool"),
    ({"sensitive_fields": "token"}, "scrubbing.sensitive_fields must be a list of strings"),
    ({"safe_fields": ["ok", ""]}, "scrubbing.safe_fields[1] must be a non-empty string"),
    ({"pii_config": 5}, "scrubbing.pii_config must be a table or a JSON string"),
    ({"pii_config": "[]"}, "scrubbing.pii_config must be a JSON object"),  # Relay accepts this
    ({"pii_config": {"applications": {"$string": ["order_idz"]}}},
     "applications.$string refers to undefined rule 'order_idz'"),
    ({"pii_config": {"rules": {"m": {"type": "multiple", "rules": ["nope"]}},
                     "applications": {"$string": ["m"]}}},
     "rules.m refers to undefined rule 'nope'"),
])
def test_from_mapping_rejects_bad_tables(raw: dict, message: str):
    with pytest.raises(ConfigError) as info:
        ScrubbingSettings.from_mapping(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(("pii_config", "relay_says"), [
    ({"rules": {"r": {"type": "pattern", "pattern": "(unclosed", "redaction": {"method": "remove"}}},
      "applications": {"$string": ["r"]}}, "unclosed group"),
    ({"rules": {"r": {"type": "wat"}}}, "unknown variant `wat`"),
    ({"applications": {"a ||": ["@ip"]}}, "expected a selector"),
    ('{"applications": {"$string": ["@ip"]', "EOF while parsing"),
])
def test_invalid_pii_config_is_a_config_error_with_relays_message(pii_config: Any, relay_says: str):
    with pytest.raises(ConfigError) as info:
        ScrubbingSettings.from_mapping({"pii_config": pii_config}, "projects[0].scrubbing", label="ms.toml")
    assert str(info.value).startswith("ms.toml: projects[0].scrubbing.pii_config: ")
    assert relay_says in str(info.value)
    assert "stacktrace" not in str(info.value)


def test_invalid_settings_built_directly_fail_when_the_scrubber_is_built():
    with pytest.raises(ConfigError, match="unclosed group"):
        Scrubber(ScrubbingSettings(pii_config={"rules": {"r": {"type": "pattern", "pattern": "("}},
                                               "applications": {"$string": ["r"]}}))


# -- worker processes --------------------------------------------------------------------------

def test_settings_and_scrubbers_pickle_and_are_rebuilt_from_the_cache():
    settings = ScrubbingSettings(sensitive_fields=["loyalty"], pii_config=ORDER_RULES)
    assert settings.sensitive_fields == ("loyalty",)
    assert pickle.loads(pickle.dumps(settings)) == settings
    scrubber = scrubber_for(settings)
    assert scrubber_for(ScrubbingSettings(sensitive_fields=("loyalty",), pii_config=ORDER_RULES)) is scrubber
    assert scrubber_for(ScrubbingSettings(sensitive_fields=("loyalty",))) is not scrubber
    assert pickle.loads(pickle.dumps(scrubber)) is scrubber  # same process: the cached one
    assert hash(settings) == hash(pickle.loads(pickle.dumps(settings)))


def test_a_pickled_scrubber_is_rebuilt_in_another_process():
    scrubber = scrubber_for(ScrubbingSettings(sensitive_fields=("loyalty",), pii_config=ORDER_RULES))
    event = normalized({"extra": {"loyalty_no": "LN-1", "note": "ord_1", "password": "hunter2"}})
    code = ("import pickle, sys, orjson; scrubber, event = pickle.load(sys.stdin.buffer); "
            "sys.stdout.buffer.write(orjson.dumps(scrubber.scrub(event)))")
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((scrubber, event)),
                          capture_output=True, check=True, timeout=60)
    assert orjson.loads(done.stdout) == scrubber.scrub(event)
    assert orjson.loads(done.stdout)["extra"] == {"loyalty_no": "[Filtered]", "note": "[order]",
                                                  "password": "[Filtered]"}


def test_settings_keep_their_own_copy_of_pii_config():
    rules = json.loads(json.dumps(ORDER_RULES))
    settings = ScrubbingSettings(pii_config=rules)
    rules["applications"]["$string"] = ["@anything:remove"]
    assert settings.pii_config == ORDER_RULES


# -- failures ------------------------------------------------------------------------------------

def test_scrubbing_failures_raise_scrubbing_error_with_the_outcome_reason():
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ScrubbingError) as info:
        DEFAULTS.scrub({"extra": deep})
    assert info.value.reason == "scrubbing_failed"
    assert "recursion limit" in str(info.value)
    assert isinstance(info.value, MinisentryError)
    with pytest.raises(ScrubbingError, match="64-bit"):
        DEFAULTS.scrub({"extra": {"n": 2**70}})
    with pytest.raises(ScrubbingError, match="must be an object"):
        DEFAULTS.scrub(["not", "an", "event"])  # type: ignore[arg-type]


def test_scrub_does_not_modify_its_argument():
    event = normalized({"extra": {"password": "hunter2"}})
    before = json.loads(json.dumps(event))
    DEFAULTS.scrub(event)
    assert event == before


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=25)
EVENT_KEYS = st.sampled_from(["extra", "request", "user", "exception", "logentry", "contexts", "tags",
                              "breadcrumbs", "_meta", "spans", "message", "timestamp", "sdk", "x"])
ODD_EVENTS = st.dictionaries(st.one_of(EVENT_KEYS, st.text(max_size=10)), JSON_VALUES, max_size=6)


WITH_IPS = Scrubber(ScrubbingSettings(scrub_ip_addresses=True, pii_config=ORDER_RULES))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ODD_EVENTS)
def test_scrub_returns_an_object_or_raises_scrubbing_error_on_arbitrary_events(event: dict):
    try:
        scrubbed = WITH_IPS.scrub(event)
    except ScrubbingError:
        return
    assert isinstance(scrubbed, dict)


# -- the real SDK ----------------------------------------------------------------------------------

class RecordingTransport(Transport):
    """Keeps the events the SDK would have sent, as the JSON it would have sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def capture_envelope(self, envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(json.loads(item.get_bytes()))


def charge_card(amount: int, password: str, card: str) -> None:
    # The secrets arrive as arguments: written as literals here they would also be in the
    # frame's source context lines, which Sentry's defaults do not scrub (code, not data).
    raise RuntimeError(f"charge of {amount} declined")


def test_real_sdk_event_has_no_secrets_left_after_scrubbing():
    transport = RecordingTransport()
    # The SDK scrubs "password" itself by default; switch that off so the server is tested.
    client = sentry_sdk.Client(dsn="http://" + "a" * 32 + "@localhost/1", transport=transport,
                               default_integrations=False, auto_enabling_integrations=False,
                               event_scrubber=EventScrubber(denylist=[], pii_denylist=[]))
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        try:
            charge_card(1200, "hunter" + "2", CARD)
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
    client.close()
    (raw,) = transport.events
    sent = orjson.dumps(raw).decode()
    assert "hunter2" in sent and CARD in sent  # the SDK really sent them
    scrubbed = DEFAULTS.scrub(normalized(raw))
    stored = orjson.dumps(scrubbed).decode()
    assert "hunter2" not in stored
    assert CARD not in stored and CARD.replace(" ", "") not in stored
    last = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert last["function"] == "charge_card"
    assert last["vars"]["password"] == "[Filtered]"
    # The SDK sends a repr (quotes included); the card rule replaces the number inside it.
    assert last["vars"]["card"] == "'[Filtered]'"
