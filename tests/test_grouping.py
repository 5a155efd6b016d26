"""Behaviour of ``minisentry.grouping``: which events share an issue, and its title and culprit."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import sentry_relay
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk.transport import Transport

from minisentry.grouping import Grouping, compute_grouping

HEX32 = re.compile(r"[0-9a-f]{32}")
NORMALIZER = sentry_relay.StoreNormalizer(project_id=1)


def md5(*values: str) -> str:
    """Sentry's ``hash_from_values``: md5 over the values' UTF-8, concatenated."""
    return hashlib.md5("".join(values).encode()).hexdigest()


def frame(module: str, function: str, line: str | None = None, in_app: bool = True,
          **extra: Any) -> dict:
    """A Python frame; ``line`` is its context line."""
    rv = {"module": module, "function": function, "filename": module.replace(".", "/") + ".py",
          "abs_path": "/srv/" + module.replace(".", "/") + ".py", "lineno": 10,
          "in_app": in_app, **extra}
    if line is not None:
        rv["context_line"] = line
    return rv


def error(exc_type: str = "ValueError", value: str | None = "bad value",
          frames: list | None = None, **event: Any) -> dict:
    """A normalized-shape error event with one exception (``frames=None``: no stack trace)."""
    exc: dict[str, Any] = {"type": exc_type}
    if value is not None:
        exc["value"] = value
    if frames is not None:
        exc["stacktrace"] = {"frames": frames}
    return {"platform": "python", "level": "error", "type": "error",
            "exception": {"values": [exc]}, **event}


def message(formatted: str, template: str | None = None, **event: Any) -> dict:
    logentry = {"formatted": formatted}
    if template is not None:
        logentry["message"] = template
    return {"platform": "python", "level": "error", "type": "default", "logentry": logentry,
            **event}


def normalized(event: dict) -> dict:
    return NORMALIZER.normalize_event(event)


APP_FRAMES = [
    frame("django.core.handlers", "inner", "response = get_response(request)", in_app=False),
    frame("shop.views", "checkout", "total = compute_total(cart)"),
    frame("shop.pricing", "compute_total", "raise ValueError(f'bad price {price}')"),
]


# -- exceptions ---------------------------------------------------------------------------------

def test_hash_is_md5_of_contributing_values_in_sentry_order():
    grouping = compute_grouping(error(frames=[frame("app.views", "f", "  raise ValueError(x)")]))
    # frame: module, function, whitespace-collapsed context line; then the exception type.
    assert grouping.hash == md5("app.views", "f", "raise ValueError(x)", "ValueError")
    assert grouping.variant == "app"


def test_same_code_path_with_different_values_groups_together():
    first = compute_grouping(error(value="bad price 12.50 for user 7", frames=APP_FRAMES))
    second = compute_grouping(error(value="something else entirely", frames=APP_FRAMES))
    assert first.hash == second.hash
    assert first.title != second.title


def test_different_code_paths_differ():
    other = APP_FRAMES[:2] + [frame("shop.pricing", "apply_discount", "raise ValueError(code)")]
    assert compute_grouping(error(frames=APP_FRAMES)).hash != compute_grouping(
        error(frames=other)).hash


def test_different_exception_types_differ():
    assert compute_grouping(error("ValueError", frames=APP_FRAMES)).hash != compute_grouping(
        error("KeyError", frames=APP_FRAMES)).hash


def test_system_frames_do_not_matter_when_in_app_frames_exist():
    other_framework = [frame("flask.app", "dispatch", "return view()", in_app=False)]
    first = compute_grouping(error(frames=APP_FRAMES))
    second = compute_grouping(error(frames=other_framework + APP_FRAMES[1:]))
    assert first.hash == second.hash
    assert first.variant == "app"


def test_without_in_app_frames_the_system_variant_uses_all_frames():
    frames = [dict(f, in_app=False) for f in APP_FRAMES]
    changed = [frame("flask.app", "dispatch", "return view()", in_app=False)] + frames[1:]
    grouping = compute_grouping(error(frames=frames))
    assert grouping.variant == "system"
    assert grouping.hash != compute_grouping(error(frames=changed)).hash
    # A non-boolean in_app is not "in app".
    assert compute_grouping(error(frames=[dict(f, in_app="yes") for f in frames])) == grouping


def test_value_only_counts_without_frames():
    with_frames = [compute_grouping(error(value=v, frames=APP_FRAMES)).hash for v in ("a", "b")]
    assert with_frames[0] == with_frames[1]
    no_frames = [compute_grouping(error(value=v)).hash for v in ("disk full", "no route")]
    assert no_frames[0] != no_frames[1]
    assert compute_grouping(error(value="disk full")).hash == md5("ValueError", "disk full")
    # Frames that contribute nothing (no module, filename or function) count as no frames.
    assert compute_grouping(error(value="disk full", frames=[{"lineno": 3}])).hash == md5(
        "ValueError", "disk full")


def test_exception_values_are_parameterized():
    assert compute_grouping(error(value="timeout after 30 s")).hash == compute_grouping(
        error(value="timeout after 45 s")).hash
    assert compute_grouping(error(value="timeout after 30 s")).hash == md5(
        "ValueError", "timeout after <int> s")


def test_chained_exceptions_all_contribute_in_order():
    def chain(*types: str) -> dict:
        values = [{"type": t, "value": "x", "stacktrace": {"frames": [frame("app.m", t.lower())]}}
                  for t in types]
        return {"platform": "python", "exception": {"values": values}}

    hashes = {compute_grouping(chain(*types)).hash
              for types in (["KeyError", "ValueError"], ["ValueError", "KeyError"],
                            ["TypeError", "ValueError"], ["ValueError"])}
    assert len(hashes) == 4
    assert compute_grouping(chain("KeyError", "ValueError")).hash == md5(
        "app.m", "keyerror", "KeyError", "app.m", "valueerror", "ValueError")


def test_exception_without_stacktrace_only_in_app_variant():
    # Like Sentry, the system variant skips exceptions that have no stack trace at all.
    system_only = [frame("lib.x", "f", in_app=False)]
    event = {"platform": "python", "exception": {"values": [
        {"type": "OSError", "value": "cause"},
        {"type": "RuntimeError", "stacktrace": {"frames": system_only}},
    ]}}
    grouping = compute_grouping(event)
    assert grouping.variant == "system"
    assert grouping.hash == md5("lib.x", "f", "RuntimeError")


def test_synthetic_exception_type_is_ignored():
    event = error("SIGSEGV", frames=APP_FRAMES)
    event["exception"]["values"][0]["mechanism"] = {"type": "signal", "synthetic": True}
    other = error("SIGABRT", frames=APP_FRAMES)
    other["exception"]["values"][0]["mechanism"] = {"type": "signal", "synthetic": True}
    assert compute_grouping(event).hash == compute_grouping(other).hash
    assert compute_grouping(event).culprit == ""
    assert "type" not in compute_grouping(event).metadata


def test_recursion_is_collapsed():
    recursive = APP_FRAMES + [APP_FRAMES[-1]] * 5
    assert compute_grouping(error(frames=recursive)).hash == compute_grouping(
        error(frames=APP_FRAMES)).hash
    # Same function at another line is not recursion.
    deeper = APP_FRAMES + [dict(APP_FRAMES[-1], lineno=99)]
    assert compute_grouping(error(frames=deeper)).hash != compute_grouping(
        error(frames=APP_FRAMES)).hash


def test_context_lines():
    def grouped(line: str, platform: str = "python") -> str:
        return compute_grouping(error(frames=[frame("m", "f", line)], platform=platform)).hash

    assert grouped("x  =   1") == grouped("\tx = 1  ")
    assert grouped("x = 1") != grouped("x = 2")
    long_a, long_b = "a = " + "1" * 130, "b = " + "2" * 130
    assert grouped(long_a) == grouped(long_b) == grouped("")  # over 120 chars: ignored
    assert grouped("x = 1", "java") == grouped("x = 2", "java")  # untrusted source on Java


def test_filename_used_without_module():
    def grouped(**fields: Any) -> str:
        return compute_grouping(error(frames=[dict(function="f", in_app=True, **fields)])).hash

    assert grouped(filename="/srv/v1.2.3/App.py") == grouped(filename="C:\\build\\9\\app.py")
    assert grouped(filename="a/app.py") != grouped(filename="a/other.py")
    assert grouped(filename="/x/app.py", module="app") == grouped(filename="/y/z.py", module="app")


def test_javascript_frames():
    def grouped(**fields: Any) -> str:
        js = dict(fields, in_app=True)
        return compute_grouping(error("TypeError", frames=[js], platform="javascript")).hash

    assert grouped(module="app/main", function="Object.render") == grouped(
        module="app/main", function="render")
    mapped = {"module": "a", "context_line": "x()", "data": {"sourcemap": "a.js.map"}}
    assert grouped(function="e", **mapped) == grouped(function="t", **mapped)  # minified names
    assert grouped(function="e", module="a") != grouped(function="t", module="a")
    assert grouped(module="a", function="<anonymous>") == grouped(module="a", function="?")


def test_threads_and_top_level_stacktrace():
    crashed = {"crashed": True, "stacktrace": {"frames": APP_FRAMES}}
    idle = {"crashed": False, "stacktrace": {"frames": [frame("x", "idle")]}}
    by_thread = compute_grouping({"threads": {"values": [idle, crashed]}, "platform": "python"})
    by_stack = compute_grouping({"stacktrace": {"frames": APP_FRAMES}, "platform": "python"})
    assert by_thread.hash == by_stack.hash
    assert by_thread.variant == "app"
    assert by_stack.culprit == "shop.pricing in compute_total"
    two_crashed = {"threads": {"values": [crashed, crashed]}, "logentry": {"formatted": "hi"}}
    assert compute_grouping(two_crashed).variant == "message"


def test_exception_takes_precedence_over_message():
    event = error(frames=APP_FRAMES, logentry={"formatted": "Something 1"})
    assert compute_grouping(event).hash == compute_grouping(error(frames=APP_FRAMES)).hash


# -- messages -----------------------------------------------------------------------------------

def test_message_groups_by_template_not_formatted():
    first = compute_grouping(message("User bob not found", "User %s not found"))
    second = compute_grouping(message("User alice not found", "User %s not found"))
    assert first.hash == second.hash == md5("User %s not found")
    assert first.variant == "message"
    assert first.title == "User bob not found"
    assert first.metadata == {"title": "User bob not found"}


def test_formatted_only_messages_are_parameterized():
    assert compute_grouping(message("Error 123")).hash == compute_grouping(
        message("Error 456")).hash == md5("Error <int>")
    assert compute_grouping(message("Error 123")).hash != compute_grouping(
        message("Failure 123")).hash


@pytest.mark.parametrize(("first", "second", "grouped_as"), [
    ("id 123e4567-e89b-12d3-a456-426614174000", "id 00000000-0000-0000-0000-000000000000",
     "id <uuid>"),
    ("from 10.0.0.1", "from 192.168.1.254", "from <ip>"),
    ("from fe80::1", "from 2001:db8::8a2e:370:7334", "from <ip>"),
    ("ptr 0xdeadbeef", "ptr 0x0", "ptr <hex>"),
    ("mail to a.b@example.com", "mail to x@y.org", "mail to <email>"),
    ("at 2024-01-02T10:11:12Z", "at 2025-12-31T23:59:59.123+02:00", "at <date>"),
    ("at Mon Jan 2 10:11:12 2024", "at Dec 31 23:59:59 2025", "at <date>"),
    ("fetch https://a.com/x?y=1 now", "fetch http://b.org/ now", "fetch <url> now"),
    ("took 1.5 s", "took -22.25 s", "took <float> s"),
    ("sha da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha " + "0" * 40, "sha <sha1>"),
    ("md5 d41d8cd98f00b204e9800998ecf8427e", "md5 " + "f" * 32, "md5 <md5>"),
    ("key='some value'", "key='other'", "key=<quoted_str>"),
    ("row 7 of 10", "row 8 of 12", "row <int> of <int>"),
])
def test_parameter_normalization(first: str, second: str, grouped_as: str):
    assert compute_grouping(message(first)).hash == md5(grouped_as)
    assert compute_grouping(message(second)).hash == md5(grouped_as)


def test_words_are_not_parameters():
    for text in ("std::vector<int> failed", "call face() now", "v2 api", "abc123 missing"):
        assert compute_grouping(message(text)).hash == md5(text)


def test_message_trimmed_to_two_lines():
    grouping = compute_grouping(message("first\n\nsecond\nthird 1"))
    assert grouping.hash == md5("first\nsecond...")
    assert grouping.title == "first"
    assert compute_grouping(message("x" * 300)).title == "x" * 97 + "..."


def test_fallback_when_nothing_contributes():
    expected = Grouping(md5(), "<unlabeled event>", "", {"title": "<unlabeled event>"}, "fallback")
    assert compute_grouping({}) == expected
    assert compute_grouping({"level": "info", "exception": {"values": [{}]}}).hash == md5()
    # A salted fingerprint cannot salt nothing: Sentry keeps the fallback.
    assert compute_grouping({"fingerprint": ["{{ default }}", "x"]}).variant == "fallback"


# -- fingerprints -------------------------------------------------------------------------------

@pytest.mark.parametrize("fingerprint", [["{{ default }}"], ["{{default}}"], ["{{ DEFAULT }}"], []])
def test_default_fingerprint_changes_nothing(fingerprint: list):
    assert compute_grouping(error(frames=APP_FRAMES, fingerprint=fingerprint)) == compute_grouping(
        error(frames=APP_FRAMES))


def test_salted_fingerprint():
    default = compute_grouping(error(frames=APP_FRAMES))
    salted = compute_grouping(error(frames=APP_FRAMES, fingerprint=["{{ default }}", "tenant-a"]))
    other_salt = compute_grouping(error(frames=APP_FRAMES, fingerprint=["{{ default }}", "b"]))
    assert salted.variant == "salted"
    assert len({default.hash, salted.hash, other_salt.hash}) == 3
    assert compute_grouping(error(value="other", frames=APP_FRAMES,
                                  fingerprint=["{{ default }}", "tenant-a"])).hash == salted.hash
    assert compute_grouping(message("Error 1", fingerprint=["x", "{{ default }}"])).hash == md5(
        "x", "Error <int>")


def test_custom_fingerprint():
    first = compute_grouping(error(frames=APP_FRAMES, fingerprint=["custom", "values"]))
    second = compute_grouping(message("unrelated", fingerprint=["custom", "values"]))
    assert first.hash == second.hash == md5("custom", "values")
    assert first.variant == "custom-fingerprint"
    assert first.title == "ValueError: bad value"  # the title is not the fingerprint's business


@pytest.mark.parametrize(("entry", "resolved"), [
    ("{{ transaction }}", "/checkout"),
    ("{{ Transaction }}", "/checkout"),
    ("{{ type }}", "ValueError"),
    ("{{ error.type }}", "ValueError"),
    ("{{ value }}", "bad value 42"),
    ("{{ error.value }}", "bad value 42"),
    ("{{ function }}", "compute_total"),
    ("{{ module }}", "shop.pricing"),
    ("{{ level }}", "warning"),
    ("{{ logger }}", "shop"),
    ("{{ message }}", "bad value <int>"),
    ("{{ unknown }}", "{{ unknown }}"),
    ("plain", "plain"),
])
def test_fingerprint_variables(entry: str, resolved: str):
    event = error(value="bad value 42", frames=APP_FRAMES, transaction="/checkout",
                  level="warning", logger="shop", fingerprint=[entry])
    assert compute_grouping(event).hash == md5(resolved)


def test_fingerprint_variables_when_missing():
    event = {"fingerprint": ["{{ transaction }}", "{{ type }}", "{{ function }}", "{{ message }}"]}
    assert compute_grouping(event).hash == md5(
        "<no-transaction>", "<no-type>", "<no-function>", "<no-message>")
    assert compute_grouping(message("hi", fingerprint=["{{ message }}", 3, None])).hash == md5(
        "hi", "3")


# -- title, culprit, metadata -------------------------------------------------------------------

def test_error_title_culprit_and_metadata():
    grouping = compute_grouping(error(value="bad value\nmore detail", frames=APP_FRAMES))
    assert grouping.title == "ValueError: bad value"
    assert grouping.culprit == "shop.pricing in compute_total"
    assert grouping.metadata == {"type": "ValueError", "value": "bad value\nmore detail",
                                 "filename": "shop/pricing.py", "function": "compute_total"}
    assert compute_grouping(error(value=None)).title == "ValueError"
    assert compute_grouping(error(value="v" * 500)).title == "ValueError: " + "v" * 97 + "..."


def test_culprit_picks_last_in_app_frame_else_last_frame():
    frames = APP_FRAMES + [frame("lib.db", "execute", in_app=False)]
    assert compute_grouping(error(frames=frames)).culprit == "shop.pricing in compute_total"
    system = [dict(f, in_app=False) for f in frames]
    assert compute_grouping(error(frames=system)).culprit == "lib.db in execute"
    assert compute_grouping(error(frames=system, transaction="/cart")).culprit == "/cart"
    assert compute_grouping(error()).culprit == ""
    js = error(frames=[{"module": "app/main", "function": "render", "in_app": True}],
               platform="javascript")
    assert compute_grouping(js).culprit == "render(app/main)"


def test_title_of_a_transaction_is_its_name():
    event = {"type": "transaction", "transaction": "/api/orders", "platform": "python"}
    grouping = compute_grouping(event)
    assert grouping.title == "/api/orders"
    assert grouping.culprit == "/api/orders"


def test_title_is_at_most_200_chars():
    grouping = compute_grouping(error("E" * 300, value="v" * 300))
    assert grouping.metadata["type"] == "E" * 125 + "..."  # Sentry trims types to 128 chars
    assert len(grouping.title) == 200


# -- relay-normalized events --------------------------------------------------------------------

def test_relay_normalized_message_events():
    first = compute_grouping(normalized({"message": "Connection to 10.1.2.3 refused"}))
    second = compute_grouping(normalized({"message": "Connection to 10.9.9.9 refused"}))
    assert first.hash == second.hash
    assert first.title == "Connection to 10.1.2.3 refused"
    templated = normalized({"logentry": {"message": "Order %s failed", "params": [17]}})
    assert compute_grouping(templated).hash == md5("Order %s failed")
    assert compute_grouping(templated).title == "Order 17 failed"


def test_relay_normalized_error_events():
    raw = {"platform": "python", "transaction": "/checkout", "exception": {"values": [
        {"value": "ValueError: bad price 3", "stacktrace": {"frames": APP_FRAMES + [None]}}]}}
    event = normalized(raw)
    grouping = compute_grouping(event)
    assert grouping.title == "ValueError: bad price 3"  # relay split type and value
    assert grouping.culprit == "/checkout"
    assert grouping.hash == compute_grouping(error(frames=APP_FRAMES)).hash
    fingerprinted = normalized({**raw, "fingerprint": ["{{ default }}", 7]})
    assert compute_grouping(fingerprinted).variant == "salted"


def test_relay_normalized_threads_event():
    event = normalized({"platform": "python", "threads": {"values": [
        {"id": 1, "crashed": True, "stacktrace": {"frames": APP_FRAMES}},
        {"id": 2, "stacktrace": {"frames": [frame("x", "idle")]}},
    ]}, "message": "deadlock"})
    grouping = compute_grouping(event)
    assert grouping.variant == "app"
    assert grouping.title == "deadlock"


# -- robustness ---------------------------------------------------------------------------------

def check(event: Any) -> Grouping:
    grouping = compute_grouping(event)
    assert HEX32.fullmatch(grouping.hash)
    assert isinstance(grouping.title, str) and len(grouping.title) <= 200
    assert isinstance(grouping.culprit, str) and isinstance(grouping.metadata, dict)
    return grouping


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
event_keys = st.sampled_from(["exception", "threads", "stacktrace", "logentry", "message",
                              "fingerprint", "transaction", "level", "platform", "type",
                              "culprit", "main_exception_id", "request", "logger"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(event_keys | st.text(max_size=10), json_values, max_size=8))
def test_never_raises_on_arbitrary_json(event: dict):
    check(event)


text_or_junk = st.text(max_size=30) | st.none() | st.integers() | st.lists(st.text(), max_size=2)
frames = st.lists(
    st.fixed_dictionaries({}, optional={
        k: text_or_junk for k in ("module", "filename", "abs_path", "function", "raw_function",
                                  "context_line", "platform", "package")
    } | {"in_app": st.booleans() | st.none() | st.text(max_size=3),
         "lineno": st.integers() | st.none(), "data": json_values})
    | json_values,
    max_size=8,
)
exceptions = st.lists(
    st.fixed_dictionaries({}, optional={
        "type": text_or_junk, "value": text_or_junk, "module": text_or_junk,
        "stacktrace": st.fixed_dictionaries({"frames": frames}) | json_values,
        "mechanism": st.fixed_dictionaries({}, optional={
            "synthetic": st.booleans() | json_values, "exception_id": st.integers()}),
    }),
    max_size=4,
)
platforms = st.sampled_from(["python", "javascript", "node", "java", "php", "ruby", "cocoa",
                             "native", "csharp", "other"]) | json_values


@settings(max_examples=300, deadline=None, database=None)
@given(exceptions, platforms, st.lists(text_or_junk, max_size=4), json_values)
def test_never_raises_on_shaped_exceptions(excs: list, platform: Any, fingerprint: list,
                                           transaction: Any):
    event = {"exception": {"values": excs}, "platform": platform, "fingerprint": fingerprint,
             "transaction": transaction, "threads": {"values": [{"stacktrace": {"frames": []}}]}}
    check(event)
    check({"exception": excs, "platform": platform})  # legacy list form


ODD_EVENTS = [
    None, [], "x", 3, {"exception": None}, {"exception": [None]}, {"exception": {"values": "x"}},
    {"threads": [1, 2]}, {"logentry": "x"}, {"message": {"formatted": 3}},
    {"stacktrace": {"frames": [None, 1, "x", {}]}}, {"fingerprint": "x"},
    {"fingerprint": [{}, ["x"], "\ud800", 10**5000, float("nan")]},
    {"message": "\ud800 lone surrogate"}, {"platform": ["python"], "stacktrace": {"frames": [
        {"module": 1, "function": ["f"], "context_line": {}, "platform": {}, "in_app": 1}]}},
]


@pytest.mark.parametrize("event", ODD_EVENTS)
def test_odd_inputs(event: Any):
    check(event)


# -- a real SDK ---------------------------------------------------------------------------------

class RecordingTransport(Transport):
    """Keeps the events the SDK would have sent, as the JSON it would have sent."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def capture_envelope(self, envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(json.loads(item.get_bytes()))


def fail_in_checkout(amount: int) -> None:
    raise ValueError(f"cannot charge {amount}")


def fail_in_refund(amount: int) -> None:
    raise ValueError(f"cannot charge {amount}")


def call_and_capture(function, *args: Any) -> None:
    try:
        function(*args)
    except ValueError as exc:
        sentry_sdk.capture_exception(exc)


@pytest.fixture
def sdk_events():
    transport = RecordingTransport()
    client = sentry_sdk.Client(dsn="http://" + "a" * 32 + "@localhost/1", transport=transport,
                               default_integrations=False, auto_enabling_integrations=False)
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        yield transport.events
    client.close()


def test_real_sdk_events(sdk_events: list):
    call_and_capture(fail_in_checkout, 10)
    call_and_capture(fail_in_checkout, 99)
    call_and_capture(fail_in_refund, 10)
    assert len(sdk_events) == 3
    checkout, checkout_again, refund = (compute_grouping(normalized(e)) for e in sdk_events)
    assert checkout.hash == checkout_again.hash
    assert checkout.hash != refund.hash
    assert checkout.variant == "app"
    assert checkout.title == "ValueError: cannot charge 10"
    assert checkout.culprit == "tests.test_grouping in fail_in_checkout"
    assert checkout.metadata["function"] == "fail_in_checkout"
    assert checkout.hash == compute_grouping(sdk_events[0]).hash  # raw SDK JSON groups the same
