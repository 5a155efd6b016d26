"""Kill-switches: named conditions, checked at stage boundaries, that drop or skip matching events.

An operator sheds load or routes around a broken step without a deploy: ``minisentry killswitches
push`` writes a value to the store and a running server follows within a second (see
:meth:`KillSwitches.watch`). Modelled on Sentry's ``src/sentry/killswitches.py``.

Switches (:data:`SWITCHES`; each declares the fields its conditions may use)::

    drop_before_parsing   ingest       project_id
    drop_after_parsing    ingest       project_id event_id event_type platform release has_attachments
    skip_symbolication    symbolicate  project_id event_id event_type platform release
    skip_processing       process      project_id event_id event_type platform release
    drop_before_save      store        project_id event_id event_type platform release level
    skip_issue_creation   store        project_id event_type platform release level

Value semantics. A switch's value is a list of conditions; a condition is a mapping of field to
value. An event matches a condition when every non-null field equals the event's value (AND), and
matches the switch when it matches any condition (OR). ``null`` (or a field left out) means "any
value". An event whose own value is unknown (None) never matches a non-null field. A condition
whose fields are all null, or ``{}``, is dropped: it matches *nothing*. That is Sentry's rule
(``normalize_value`` skips empty conditions) and the safe one — a stray ``{}`` must not drop all
data. ``[]`` disables the switch.

Field types: ``project_id`` a positive integer; ``event_id`` 32 hex digits (a dashed UUID is
accepted, stored as 32 lowercase hex); ``event_type`` one of :data:`EVENT_TYPES`; ``level`` one of
:data:`LEVELS`; ``platform`` and ``release`` non-empty strings; ``has_attachments`` true/false.
:func:`validate` refuses anything else with a :class:`~minisentry.errors.KillSwitchError` naming
the switch, the condition ("condition 2 of 3") and the field.

File format (``killswitches pull``/``push``): JSON, where whole lines starting with ``#`` are
comments (a JSON string cannot span lines, so no ``#`` line is ever part of a value). Duplicate keys
and NaN/Infinity are refused. :func:`render_file` writes the switch's description, its fields, the
syntax and the current value as comments, then the value with every field spelled out::

    # drop_after_parsing: ...
    [
      {"project_id": 2, "event_id": null, "event_type": null, "platform": "native", ...}
    ]

:func:`describe` prints a value the way ``push`` previews it:
``DROP DATA WHERE (project_id = 1) OR (project_id = 2 AND platform = 'native')``, or
``<disabled entirely>``.

Stages hold one :class:`KillSwitches` and ask it on the hot path::

    if switches.enabled("drop_before_save") and switches.matches("drop_before_save", project_id=...):
        ...record Outcome.FILTERED with reason OUTCOME_REASON, drop the event...
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import anyio
from anyio.abc import TaskStatus

from .errors import KillSwitchError, MinisentryError
from .fanout import Subscription, pause

__all__ = [
    "Condition",
    "EVENT_TYPES",
    "FIELDS",
    "Field",
    "KillSwitches",
    "LEVELS",
    "OUTCOME_REASON",
    "SWITCHES",
    "Switch",
    "describe",
    "event_type_of",
    "parse_file",
    "render_file",
    "switch",
    "to_json",
    "validate",
]

log = logging.getLogger("minisentry.killswitches")

#: One condition: ``(field, value)`` pairs in the switch's declared field order, null fields left out.
Condition = tuple[tuple[str, Any], ...]

#: The outcome reason recorded (with ``Outcome.FILTERED``) for an event a switch dropped.
OUTCOME_REASON = "killswitch"

#: Sentry's event types (Relay's ``EventType``, serialized).
EVENT_TYPES = ("error", "default", "transaction", "csp", "hpkp", "expectct", "expectstaple", "nel",
               "generic", "userreportv2")
#: Levels a normalized event can have.
LEVELS = ("fatal", "error", "warning", "info", "debug")

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


# -- the registry (data: add a field or a switch by adding an entry) --------------------------------


def _positive_int(value: Any) -> int:
    # bool is an int in Python, but `true` is not a project id.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError


def _event_id(value: Any) -> str:
    if isinstance(value, str) and (_HEX32.fullmatch(value) or _UUID.fullmatch(value)):
        return value.replace("-", "").lower()
    raise ValueError


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise ValueError
    return parse


def _text(value: Any) -> str:
    # Relay refuses releases with surrounding whitespace, so such a value could never match.
    if isinstance(value, str) and value and value == value.strip():
        return value
    raise ValueError


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError


@dataclass(frozen=True, slots=True)
class Field:
    """A field conditions may test: ``parse`` returns the canonical value or raises ValueError."""

    name: str
    expected: str
    doc: str
    parse: Callable[[Any], Any]


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("project_id", "a positive integer", "the project's numeric id", _positive_int),
    Field("event_id", "32 hex digits (or a dashed UUID)", "the event's id", _event_id),
    Field("event_type", f"one of {', '.join(EVENT_TYPES)}", "the kind of event (default: a message)",
          _one_of(EVENT_TYPES)),
    Field("platform", "a non-empty string without surrounding spaces", "the event's platform, e.g. python",
          _text),
    Field("release", "a non-empty string without surrounding spaces", "the event's release", _text),
    Field("level", f"one of {', '.join(LEVELS)}", "the event's level after normalization", _one_of(LEVELS)),
    Field("has_attachments", "true or false", "whether the envelope carried attachments", _boolean),
)}

_DROP = "DROP DATA"
_EVENT_FIELDS = ("project_id", "event_id", "event_type", "platform", "release")


@dataclass(frozen=True, slots=True)
class Switch:
    """A kill-switch: where it is checked, what it does (``action``) and the fields it offers."""

    name: str
    stage: str
    action: str
    doc: str
    fields: tuple[str, ...]

    @property
    def drops(self) -> bool:
        """True when a match drops the event (record ``filtered``/``killswitch``); else it skips a step."""
        return self.action == _DROP


SWITCHES: dict[str, Switch] = {s.name: s for s in (
    Switch("drop_before_parsing", "ingest", _DROP,
           "Drop events in ingest before their payload is parsed: the cheapest place to shed load.",
           ("project_id",)),
    Switch("drop_after_parsing", "ingest", _DROP,
           "Drop events in ingest once their payload is parsed (more fields, parsing already paid).",
           _EVENT_FIELDS + ("has_attachments",)),
    Switch("skip_symbolication", "symbolicate", "SKIP SYMBOLICATION",
           "Pass events through the symbolicate stage unchanged.", _EVENT_FIELDS),
    Switch("skip_processing", "process", "SKIP PROCESSING",
           "Skip the process stage's work for these events; they still reach the store.", _EVENT_FIELDS),
    Switch("drop_before_save", "store", _DROP,
           "Drop events in the store stage just before they are written.", _EVENT_FIELDS + ("level",)),
    Switch("skip_issue_creation", "store", "SKIP ISSUE CREATION",
           "Store events without creating or updating an issue for them.",
           ("project_id", "event_type", "platform", "release", "level")),
)}

_FIELD_SETS = {name: frozenset(switch.fields) for name, switch in SWITCHES.items()}


# -- validation and description -----------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def switch(name: str) -> Switch:
    """Return the switch called ``name``. Never blocks; raises KillSwitchError naming the known ones."""
    try:
        return SWITCHES[name]
    except (KeyError, TypeError):
        raise KillSwitchError(f"unknown kill-switch {name!r}; known: {', '.join(SWITCHES)}") from None


def validate(name: str, raw: Any) -> tuple[Condition, ...]:
    """Check a switch's value strictly and return it compiled; conditions with no non-null field are dropped.

    ``raw`` is what JSON gives: a list of objects. Never blocks. Raises KillSwitchError for an
    unknown switch, a value that is not a list, a condition that is not an object, an unknown field
    (listing the allowed ones) or a value of the wrong type (naming the expected one).
    """
    spec = switch(name)
    if not isinstance(raw, (list, tuple)):
        raise KillSwitchError(f"{name}: the value must be a list of conditions, got {_json_type(raw)}")
    conditions: list[Condition] = []
    total = len(raw)
    for index, condition in enumerate(raw, 1):
        where = f"{name}: condition {index} of {total}"
        if not isinstance(condition, Mapping):
            raise KillSwitchError(f"{where}: must be an object of field: value, got {_json_type(condition)}")
        for key in condition:
            if key not in spec.fields:
                raise KillSwitchError(f"{where}: unknown field {key!r}; allowed: {', '.join(spec.fields)}")
        pairs: list[tuple[str, Any]] = []
        for field in spec.fields:  # declared order: stable descriptions and comparisons
            value = condition.get(field)
            if value is None:
                continue
            try:
                pairs.append((field, FIELDS[field].parse(value)))
            except ValueError:
                raise KillSwitchError(f"{where}: field {field!r} must be {FIELDS[field].expected}, "
                                      f"got {_json_type(value)} {_show(value)}") from None
        if pairs:
            conditions.append(tuple(pairs))
    return tuple(conditions)


def _sql(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def describe(conditions: Sequence[Condition], action: str = _DROP) -> str:
    """Return the value as faux SQL, e.g. ``DROP DATA WHERE (project_id = 1) OR (...)``. Never blocks.

    ``action`` is the switch's :attr:`Switch.action`; an empty value is ``<disabled entirely>``.
    """
    if not conditions:
        return "<disabled entirely>"
    return f"{action} WHERE " + " OR ".join(
        "(" + " AND ".join(f"{field} = {_sql(value)}" for field, value in condition) + ")"
        for condition in conditions
    )


def to_json(conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    """Return compiled conditions as the JSON list the store keeps (non-null fields only)."""
    return [dict(condition) for condition in conditions]


def event_type_of(item_type: str, data: Mapping[str, Any] | None) -> str:
    """Return Sentry's event type for an item and its (parsed) payload. Never blocks or raises.

    A transaction item is ``transaction``; else the payload's own ``type`` when it is a known one;
    else ``error`` when it carries exceptions and ``default`` (a message) when not.
    """
    if item_type == "transaction":
        return "transaction"
    if data is None:
        return "default"
    declared = data.get("type")
    if isinstance(declared, str) and declared in EVENT_TYPES:
        return declared
    exception = data.get("exception")
    if isinstance(exception, Mapping):
        exception = exception.get("values")
    return "error" if exception else "default"


# -- the pull/push file -------------------------------------------------------------------------


def render_file(name: str, conditions: Sequence[Condition]) -> str:
    """Return the commented file ``pull`` writes for a switch's current value. Raises KillSwitchError."""
    spec = switch(name)
    width = max(len(field) for field in spec.fields)
    lines = [
        f"# Kill-switch {name} (checked in the {spec.stage} stage)",
        f"# {spec.doc}",
        "#",
        "# Fields:",
        *(f"#   {field:<{width}}  {FIELDS[field].doc}; {FIELDS[field].expected}" for field in spec.fields),
        "#",
        "# The value is a JSON list of conditions. An event matches a condition when every non-null",
        "# field equals the event's value; it matches the switch when it matches any condition.",
        "# null (or leaving a field out) means any value. A condition with no non-null field matches",
        "# nothing and is removed; [] disables the switch. Lines starting with # are comments.",
        "#",
        "# Example: " + json.dumps([{field: None for field in spec.fields} | {"project_id": 1}]),
        "#",
        f"# Current value: {describe(conditions, spec.action)}",
    ]
    if not conditions:
        return "\n".join(lines) + "\n[]\n"
    rows = [json.dumps({field: dict(condition).get(field) for field in spec.fields}, ensure_ascii=False)
            for condition in conditions]
    return "\n".join(lines) + "\n[\n" + ",\n".join(f"  {row}" for row in rows) + "\n]\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise KillSwitchError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise KillSwitchError(f"{name} is not a valid value")


def parse_file(text: str, source: str = "<file>") -> Any:
    """Parse a pull/push file: JSON with whole-line ``#`` comments. Returns the raw value for validate().

    Never blocks. Raises KillSwitchError naming ``source`` and the line and column of a JSON error.
    """
    # Comment lines become empty lines, so JSON's line numbers are the file's.
    lines = ["" if line.lstrip().startswith("#") else line for line in text.split("\n")]
    if not any(line.strip() for line in lines):
        raise KillSwitchError(f"{source}: no value (the file is empty or all comments); write [] to disable the switch")
    try:
        return json.loads("\n".join(lines), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except KillSwitchError as exc:
        raise KillSwitchError(f"{source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise KillSwitchError(f"{source}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


# -- the runtime holder -------------------------------------------------------------------------


class KillSwitches:
    """The current values of every switch, compiled for the hot path; swapped whole on change.

    Reads are lock-free and safe from worker threads: :meth:`replace` builds a new dict and swaps
    one reference, so a reader sees either the old or the new values of all switches.
    """

    def __init__(self, values: Mapping[str, Sequence[Condition]] | None = None) -> None:
        self._values: dict[str, tuple[Condition, ...]] = {name: () for name in SWITCHES}
        if values:
            self.replace(values)

    def enabled(self, name: str) -> bool:
        """Return whether the switch has any condition. Never blocks or allocates.

        Raises ValueError for a name that is not in :data:`SWITCHES` (a bug in the caller).
        """
        try:
            return bool(self._values[name])
        except KeyError:
            raise ValueError(f"unknown kill-switch {name!r}") from None

    def conditions(self, name: str) -> tuple[Condition, ...]:
        """Return the switch's compiled conditions. Never blocks; raises ValueError for an unknown name."""
        try:
            return self._values[name]
        except KeyError:
            raise ValueError(f"unknown kill-switch {name!r}") from None

    def matches(self, name: str, /, **fields: Any) -> bool:
        """Return whether an event with these field values matches the switch. Never blocks.

        Pass exactly the switch's declared fields (None for a value the event lacks). Guard the call
        with :meth:`enabled` on the hot path: building the keyword arguments is the only cost of a
        disabled switch. Raises ValueError for an unknown switch and TypeError for wrong fields.
        """
        conditions = self.conditions(name)
        if fields.keys() != _FIELD_SETS[name]:
            raise TypeError(f"kill-switch {name} takes the fields {', '.join(SWITCHES[name].fields)}; "
                            f"got {', '.join(fields) or 'none'}")
        for condition in conditions:
            for field, value in condition:
                if fields[field] != value:
                    break
            else:
                return True
        return False

    def replace(self, values: Mapping[str, Sequence[Condition]]) -> None:
        """Swap in compiled values (from :func:`validate`); switches not in ``values`` are disabled.

        Never blocks. Raises KillSwitchError for an unknown switch name (nothing is changed then).
        """
        for name in values:
            switch(name)
        self._values = {name: tuple(values.get(name, ())) for name in SWITCHES}

    def apply(self, raw: Mapping[str, Any]) -> list[KillSwitchError]:
        """Validate and swap in stored values; return the problems instead of raising. Never blocks.

        Switches absent from ``raw`` are disabled. A switch whose stored value is invalid keeps its
        current value; unknown names (e.g. written by a newer version) are ignored. Both are reported.
        """
        problems: list[KillSwitchError] = []
        new: dict[str, tuple[Condition, ...]] = {}
        for name in SWITCHES:
            try:
                new[name] = validate(name, raw[name]) if name in raw else ()
            except KillSwitchError as exc:
                problems.append(exc)
                new[name] = self._values[name]
        problems += [KillSwitchError(f"unknown kill-switch {name!r} in the store")
                     for name in raw if name not in SWITCHES]
        self._values = new
        return problems

    async def watch(self, load: Callable[[], Mapping[str, Any]], *, interval: float = 0.25,
                    wake: Subscription | None = None,
                    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Re-read the stored values with ``load`` every ``interval`` seconds until cancelled.

        With ``wake`` (a fan-out subscription), a publish re-reads them at once instead.

        ``load`` blocks (e.g. ``store.killswitch_values``) and runs in a worker thread; it returns
        ``{name: raw value}``. Reports started (for ``task_group.start``) after the first attempt, so
        the initial values are in place before events flow. A load raising MinisentryError is logged
        and the current values stay; an invalid stored value is logged when it first appears.
        Runs on trio and asyncio. Other exceptions from ``load`` propagate (they are bugs).
        """
        # Failures and problems are logged when they first appear, not on every retry: a store
        # that stays locked, or a bad value that stays stored, must not flood the log.
        last_error: str | None = None
        last_problems: set[str] = set()
        started = False
        while True:
            try:
                raw = await anyio.to_thread.run_sync(load)
            except MinisentryError as exc:
                if str(exc) != last_error:
                    log.error("cannot read kill-switches, keeping the current values: %s", exc)
                last_error = str(exc)
            else:
                if last_error is not None:
                    log.info("kill-switches are readable again")
                    last_error = None
                problems = {str(problem) for problem in self.apply(raw)}
                for problem in sorted(problems - last_problems):
                    log.error("stored kill-switch value not applied: %s", problem)
                last_problems = problems
            if not started:
                started = True
                task_status.started()
            await pause(wake, interval)
