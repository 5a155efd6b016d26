"""Kill-switches: the registry, strict validation, descriptions, matching, the file format, the watcher."""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.backends.sqlite import SqliteStore
from minisentry.errors import ConfigError, KillSwitchError, StorageError
from minisentry.killswitches import (
    FIELDS,
    SWITCHES,
    KillSwitches,
    describe,
    event_type_of,
    parse_file,
    render_file,
    to_json,
    validate,
)

EVENT_FIELDS = ("project_id", "event_id", "event_type", "platform", "release")
EID = "0123456789abcdef0123456789abcdef"


def error_of(name: str, raw: Any) -> str:
    with pytest.raises(KillSwitchError) as info:
        validate(name, raw)
    return str(info.value)


def event(name: str, **values: Any) -> dict[str, Any]:
    """Every field of switch ``name`` set to None, then ``values``."""
    return {field: None for field in SWITCHES[name].fields} | values


# -- the registry: the contract the stages are wired against -----------------------------------


def test_switches_and_their_fields():
    assert {name: switch.fields for name, switch in SWITCHES.items()} == {
        "drop_before_parsing": ("project_id",),
        "drop_after_parsing": EVENT_FIELDS + ("has_attachments",),
        "skip_symbolication": EVENT_FIELDS,
        "skip_processing": EVENT_FIELDS,
        "drop_before_save": EVENT_FIELDS + ("level",),
        "skip_issue_creation": ("project_id", "event_type", "platform", "release", "level"),
    }
    assert {name for name, switch in SWITCHES.items() if switch.drops} == {
        "drop_before_parsing", "drop_after_parsing", "drop_before_save"}
    for switch in SWITCHES.values():
        assert switch.doc and switch.stage in ("ingest", "symbolicate", "process", "store")
        assert set(switch.fields) <= set(FIELDS)


def test_killswitch_error_is_a_config_error():
    assert issubclass(KillSwitchError, ConfigError)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("drop_befor_save", [], "unknown kill-switch 'drop_befor_save'; known: drop_before_parsing, drop_after_parsing, "
                            "skip_symbolication, skip_processing, drop_before_save, skip_issue_creation"),
    ("drop_before_save", {"project_id": 1}, "drop_before_save: the value must be a list of conditions, got object"),
    ("drop_before_save", None, "drop_before_save: the value must be a list of conditions, got null"),
    ("drop_before_save", [{"project_id": 1}, 5],
     "drop_before_save: condition 2 of 2: must be an object of field: value, got number"),
    ("drop_before_parsing", [{"project_id": 1, "platform": "native"}],
     "drop_before_parsing: condition 1 of 1: unknown field 'platform'; allowed: project_id"),
    ("skip_issue_creation", [{"event_id": EID}],
     "skip_issue_creation: condition 1 of 1: unknown field 'event_id'; "
     "allowed: project_id, event_type, platform, release, level"),
    ("drop_before_save", [{"project_id": "1"}],
     "drop_before_save: condition 1 of 1: field 'project_id' must be a positive integer, got string \"1\""),
    ("drop_before_save", [{"project_id": True}],
     "drop_before_save: condition 1 of 1: field 'project_id' must be a positive integer, got boolean true"),
    ("drop_before_save", [{"project_id": 0}],
     "drop_before_save: condition 1 of 1: field 'project_id' must be a positive integer, got number 0"),
    ("drop_before_save", [{"project_id": 1.0}],
     "drop_before_save: condition 1 of 1: field 'project_id' must be a positive integer, got number 1.0"),
    ("drop_before_save", [{"event_id": "abc"}],
     "drop_before_save: condition 1 of 1: field 'event_id' must be 32 hex digits (or a dashed UUID), "
     "got string \"abc\""),
    ("drop_before_save", [{"event_type": "exception"}],
     "drop_before_save: condition 1 of 1: field 'event_type' must be one of error, default, transaction, csp, "
     "hpkp, expectct, expectstaple, nel, generic, userreportv2, got string \"exception\""),
    ("drop_before_save", [{"level": "warn"}],
     "drop_before_save: condition 1 of 1: field 'level' must be one of fatal, error, warning, info, debug, "
     "got string \"warn\""),
    ("drop_before_save", [{"platform": ""}],
     "drop_before_save: condition 1 of 1: field 'platform' must be a non-empty string without surrounding "
     "spaces, got string \"\""),
    ("drop_before_save", [{"release": " 1.0"}],
     "drop_before_save: condition 1 of 1: field 'release' must be a non-empty string without surrounding "
     "spaces, got string \" 1.0\""),
    ("drop_after_parsing", [{"has_attachments": 1}],
     "drop_after_parsing: condition 1 of 1: field 'has_attachments' must be true or false, got number 1"),
    ("drop_after_parsing", [{"has_attachments": "true"}],
     "drop_after_parsing: condition 1 of 1: field 'has_attachments' must be true or false, got string \"true\""),
])
def test_validation_errors_name_the_problem(name, raw, message):
    assert error_of(name, raw) == message


def test_validation_compiles_in_declared_field_order_without_nulls():
    raw = [{"platform": "native", "event_id": None, "project_id": 2}, {"project_id": 1}]
    assert validate("drop_before_save", raw) == (
        (("project_id", 2), ("platform", "native")),
        (("project_id", 1),),
    )


def test_empty_and_all_null_conditions_match_nothing_and_are_dropped():
    # Sentry's rule: a stray {} must not drop all data.
    assert validate("drop_before_save", [{}]) == ()
    assert validate("drop_before_save", [{"project_id": None, "level": None}, {"project_id": 3}]) == (
        (("project_id", 3),),)
    switches = KillSwitches({"drop_before_save": validate("drop_before_save", [{}])})
    assert not switches.enabled("drop_before_save")
    assert not switches.matches("drop_before_save", **event("drop_before_save", project_id=1))


def test_event_ids_are_canonical():
    dashed = "01234567-89AB-CDEF-0123-456789ABCDEF"
    assert validate("skip_processing", [{"event_id": dashed}]) == ((("event_id", EID),),)
    assert validate("skip_processing", [{"event_id": EID.upper()}]) == ((("event_id", EID),),)


def test_tuples_and_mappings_from_python_callers():
    assert validate("drop_before_parsing", ({"project_id": 4},)) == ((("project_id", 4),),)


# -- describe ----------------------------------------------------------------------------------------


def test_describe():
    conditions = validate("drop_after_parsing", [{"project_id": 1}, {"platform": "native", "project_id": 2}])
    assert describe(conditions) == "DROP DATA WHERE (project_id = 1) OR (project_id = 2 AND platform = 'native')"
    assert describe(()) == "<disabled entirely>"
    assert describe(validate("drop_after_parsing", [])) == "<disabled entirely>"


def test_describe_quotes_strings_and_spells_booleans():
    conditions = validate("drop_after_parsing", [{"release": "it's 1.0", "has_attachments": True},
                                                 {"has_attachments": False, "event_type": "transaction"}])
    assert describe(conditions) == ("DROP DATA WHERE (release = 'it''s 1.0' AND has_attachments = true) OR "
                                    "(event_type = 'transaction' AND has_attachments = false)")


def test_describe_uses_the_switch_action():
    conditions = validate("skip_issue_creation", [{"level": "info"}])
    assert describe(conditions, SWITCHES["skip_issue_creation"].action) == "SKIP ISSUE CREATION WHERE (level = 'info')"


# -- matching ----------------------------------------------------------------------------------------


def switches_with(name: str, raw: list) -> KillSwitches:
    return KillSwitches({name: validate(name, raw)})


def test_fields_are_anded_and_conditions_ored():
    switches = switches_with("drop_before_save", [{"project_id": 1}, {"project_id": 2, "platform": "native"}])
    def matches(**values: Any) -> bool:
        return switches.matches("drop_before_save", **event("drop_before_save", **values))
    assert matches(project_id=1)
    assert matches(project_id=1, platform="python", level="info")
    assert matches(project_id=2, platform="native")
    assert not matches(project_id=2, platform="python")
    assert not matches(project_id=2)  # the event's platform is unknown: a non-null field never matches None
    assert not matches(project_id=3, platform="native")


def test_null_means_any_value():
    switches = switches_with("skip_processing", [{"project_id": None, "event_type": "transaction"}])
    for project_id in (1, 2, 99):
        assert switches.matches("skip_processing", **event("skip_processing", project_id=project_id,
                                                            event_type="transaction"))
    assert not switches.matches("skip_processing", **event("skip_processing", project_id=1, event_type="error"))


def test_disabled_switches_match_nothing():
    switches = KillSwitches()
    for name in SWITCHES:
        assert not switches.enabled(name)
        assert not switches.matches(name, **event(name, project_id=1))


def test_matches_insists_on_the_declared_fields():
    switches = switches_with("drop_before_parsing", [{"project_id": 1}])
    with pytest.raises(TypeError, match="takes the fields project_id; got projectid"):
        switches.matches("drop_before_parsing", projectid=1)
    with pytest.raises(TypeError):
        switches.matches("drop_before_parsing")
    with pytest.raises(ValueError, match="unknown kill-switch 'drop'"):
        switches.matches("drop", project_id=1)
    with pytest.raises(ValueError, match="unknown kill-switch 'drop'"):
        switches.enabled("drop")


def test_replace_swaps_everything_and_refuses_unknown_names():
    switches = switches_with("drop_before_parsing", [{"project_id": 1}])
    switches.replace({"skip_processing": validate("skip_processing", [{"project_id": 2}])})
    assert not switches.enabled("drop_before_parsing")
    assert switches.enabled("skip_processing")
    with pytest.raises(KillSwitchError, match="unknown kill-switch 'nope'"):
        switches.replace({"nope": ()})
    assert switches.enabled("skip_processing")


def test_apply_keeps_the_old_value_of_an_invalid_switch():
    switches = switches_with("drop_before_parsing", [{"project_id": 1}])
    problems = switches.apply({"drop_before_parsing": [{"project_id": "x"}],
                               "skip_processing": [{"project_id": 2}], "from_the_future": []})
    assert [str(p) for p in problems] == [
        "drop_before_parsing: condition 1 of 1: field 'project_id' must be a positive integer, got string \"x\"",
        "unknown kill-switch 'from_the_future' in the store",
    ]
    assert switches.conditions("drop_before_parsing") == ((("project_id", 1),),)
    assert switches.conditions("skip_processing") == ((("project_id", 2),),)
    assert switches.apply({}) == []
    assert not any(switches.enabled(name) for name in SWITCHES)


def test_event_type_of():
    assert event_type_of("transaction", None) == "transaction"
    assert event_type_of("event", {"exception": {"values": [{"type": "ValueError"}]}}) == "error"
    assert event_type_of("event", {"exception": [{"type": "ValueError"}]}) == "error"
    assert event_type_of("event", {"message": "hi"}) == "default"
    assert event_type_of("event", {"type": "csp"}) == "csp"
    assert event_type_of("event", {"type": "bogus", "exception": {"values": []}}) == "default"
    assert event_type_of("event", None) == "default"


# -- property: validate accepts or refuses precisely, and matches() is the plain reading ----------

# Per field: values validate() accepts (all canonical), and values most fields must refuse.
VALID = {
    "project_id": [1, 2, 3],
    "event_id": [EID, "f" * 32],
    "event_type": ["error", "transaction", "default"],
    "platform": ["python", "native", "it's"],
    "release": ["1.0", "2.0"],
    "level": ["error", "info"],
    "has_attachments": [True, False],
}
INVALID = [0, -1, "", " x", 1.5, True, "1", [], {}, "warn"]


REFERENCE_TYPES = {
    "project_id": lambda v: type(v) is int and v > 0,
    "event_id": lambda v: type(v) is str and len(v) == 32 and set(v) <= set("0123456789abcdef"),
    "event_type": lambda v: v in ("error", "default", "transaction", "csp", "hpkp", "expectct", "expectstaple",
                                  "nel", "generic", "userreportv2"),
    "platform": lambda v: type(v) is str and v != "" and v == v.strip(),
    "release": lambda v: type(v) is str and v != "" and v == v.strip(),
    "level": lambda v: v in ("fatal", "error", "warning", "info", "debug"),
    "has_attachments": lambda v: type(v) is bool,
}


def valid_for(field: str, value: Any) -> bool:
    return isinstance(value, (str, int)) and REFERENCE_TYPES[field](value)


@st.composite
def raw_values(draw, name: str):
    fields = SWITCHES[name].fields
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from([None, {}, "x", 1]))
    conditions = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 20)) == 0:
            conditions.append(draw(st.sampled_from([None, 1, "x", []])))
            continue
        keys = draw(st.lists(st.sampled_from(fields + ("bogus",)) if draw(st.integers(0, 10)) == 0
                             else st.sampled_from(fields), unique=True, max_size=len(fields)))
        conditions.append({key: draw(st.sampled_from(INVALID) if draw(st.integers(0, 15)) == 0
                                     else st.one_of(st.none(), st.sampled_from(VALID.get(key, [1]))))
                           for key in keys})
    return conditions


def reference_valid(name: str, raw: Any) -> bool:
    if not isinstance(raw, list):
        return False
    for condition in raw:
        if not isinstance(condition, dict):
            return False
        for key, value in condition.items():
            if key not in SWITCHES[name].fields or (value is not None and not valid_for(key, value)):
                return False
    return True


def reference_matches(raw: list, values: dict[str, Any]) -> bool:
    return any(
        any(v is not None for v in condition.values())
        and all(v is None or values[k] == v for k, v in condition.items())
        for condition in raw
    )


@st.composite
def switch_and_value(draw):
    name = draw(st.sampled_from(sorted(SWITCHES)))
    return name, draw(raw_values(name))


@settings(max_examples=400, deadline=None, database=None)
@given(switch_and_value(), st.data())
def test_validate_or_refuse_and_match_like_the_reference(case, data):
    name, raw = case
    try:
        conditions = validate(name, raw)
    except KillSwitchError:
        assert not reference_valid(name, raw)
        return
    assert reference_valid(name, raw)
    switches = KillSwitches({name: conditions})
    assert switches.enabled(name) == bool(conditions)
    assert validate(name, to_json(conditions)) == conditions
    assert validate(name, parse_file(render_file(name, conditions))) == conditions
    for _ in range(5):
        values = {field: data.draw(st.one_of(st.none(), st.sampled_from(VALID[field])))
                  for field in SWITCHES[name].fields}
        assert switches.matches(name, **values) == reference_matches(raw, values)


# -- the file format -----------------------------------------------------------------------------------


def test_pulled_file_explains_itself_and_reads_back():
    conditions = validate("drop_after_parsing", [{"project_id": 2, "platform": "native"}])
    text = render_file("drop_after_parsing", conditions)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert comments[0] == "# Kill-switch drop_after_parsing (checked in the ingest stage)"
    assert comments[1] == f"# {SWITCHES['drop_after_parsing'].doc}"
    for field in SWITCHES["drop_after_parsing"].fields:
        assert any(line.startswith(f"#   {field} ") for line in comments)
    assert "# Current value: DROP DATA WHERE (project_id = 2 AND platform = 'native')" in comments
    assert text.splitlines()[len(comments):] == [
        "[",
        '  {"project_id": 2, "event_id": null, "event_type": null, "platform": "native", "release": null, '
        '"has_attachments": null}',
        "]",
    ]
    assert validate("drop_after_parsing", parse_file(text)) == conditions
    assert render_file("drop_before_parsing", ()).endswith("# Current value: <disabled entirely>\n[]\n")


@pytest.mark.parametrize(("text", "message"), [
    ("", "f.json: no value (the file is empty or all comments); write [] to disable the switch"),
    ("# only\n  # comments\n", "f.json: no value (the file is empty or all comments); write [] to disable the switch"),
    ('# a\n# b\n[\n  {"project_id": 1,}\n]\n', "f.json: line 4 column 20: Expecting property name enclosed in double quotes"),
    ('[{"project_id": 1, "project_id": 2}]', "f.json: key 'project_id' appears twice in one object"),
    ('[{"project_id": NaN}]', "f.json: NaN is not a valid value"),
    ("[] []", "f.json: line 1 column 4: Extra data"),
])
def test_file_errors_say_where(text, message):
    with pytest.raises(KillSwitchError) as info:
        parse_file(text, "f.json")
    assert str(info.value) == message


def test_indented_comments_and_crlf_are_accepted():
    assert parse_file('# x\r\n[\r\n   # the first\r\n  {"project_id": 1}\r\n]\r\n') == [{"project_id": 1}]


# -- the watcher -----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.sqlite") as store:
        yield store


class CountingLoad:
    """A load callable over a store that counts its calls and can be told to fail."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self) -> dict[str, list]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self.store.killswitch_values()


async def wait_until(predicate) -> None:
    with anyio.fail_after(30):  # a guard against hanging, not a performance threshold
        while not predicate():
            await anyio.sleep(0.001)


@pytest.mark.anyio
async def test_watch_starts_with_the_stored_values_and_follows_changes(store):
    store.set_killswitch("drop_before_parsing", [{"project_id": 1}])
    load = CountingLoad(store)
    switches = KillSwitches()
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(switches.watch, load, interval=0.005))
        assert switches.conditions("drop_before_parsing") == ((("project_id", 1),),)

        await anyio.to_thread.run_sync(store.set_killswitch, "skip_processing", [{"platform": "native"}])
        calls_at_change = load.calls
        await wait_until(lambda: switches.enabled("skip_processing"))
        # A load already running when the change committed may miss it; the next one must not.
        assert load.calls - calls_at_change <= 2
        assert switches.matches("skip_processing", **event("skip_processing", platform="native"))

        await anyio.to_thread.run_sync(store.set_killswitch, "drop_before_parsing", [])
        await wait_until(lambda: not switches.enabled("drop_before_parsing"))
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_watch_keeps_values_while_loading_fails(store, caplog):
    store.set_killswitch("drop_before_parsing", [{"project_id": 1}])
    load = CountingLoad(store)
    switches = KillSwitches()
    caplog.set_level(logging.INFO, logger="minisentry.killswitches")
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(switches.watch, load, interval=0.001))
        load.fail = StorageError("database is locked")
        await wait_until(lambda: load.calls >= 10)
        assert switches.enabled("drop_before_parsing")
        failures = [r for r in caplog.records if "cannot read kill-switches" in r.getMessage()]
        assert len(failures) == 1 and "database is locked" in failures[0].getMessage()

        store.set_killswitch("drop_before_parsing", [])
        load.fail = None
        await wait_until(lambda: not switches.enabled("drop_before_parsing"))
        assert any("readable again" in r.getMessage() for r in caplog.records)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_watch_keeps_a_switch_whose_stored_value_is_invalid(store, caplog):
    store.set_killswitch("drop_before_parsing", [{"project_id": 1}])
    load = CountingLoad(store)
    switches = KillSwitches()
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(switches.watch, load, interval=0.001))
        # Written behind validate()'s back, e.g. by hand or by another version.
        store.set_killswitch("drop_before_parsing", [{"project_id": "one"}])
        store.set_killswitch("skip_processing", [{"project_id": 5}])
        await wait_until(lambda: switches.enabled("skip_processing"))
        calls = load.calls
        await wait_until(lambda: load.calls >= calls + 5)
        tg.cancel_scope.cancel()
    assert switches.conditions("drop_before_parsing") == ((("project_id", 1),),)
    invalid = [r for r in caplog.records if "value not applied" in r.getMessage()]
    assert len(invalid) == 1 and "field 'project_id' must be a positive integer" in invalid[0].getMessage()
