"""PII scrubbing with Relay's own scrubber, Sentry's server-side defaults on.

What Sentry does, and so what this does: a project has *data-scrubbing settings* (``scrubData``,
``scrubDefaults``, ``scrubIpAddresses``, ``sensitiveFields``, ``excludeFields`` — here
:class:`ScrubbingSettings`' ``enabled``, ``scrub_defaults``, ``scrub_ip_addresses``,
``sensitive_fields``, ``safe_fields``) and optional *advanced rules* (Relay's ``piiConfig`` JSON,
here ``pii_config``). Sentry does not fold them into one config: ``get_all_pii_configs`` in
``src/sentry/datascrubbing.py`` (and ``ProjectConfig::pii_configs`` in Relay) yields the advanced
config first, its rule names prefixed ``project:`` by ``_merge_pii_configs``, then
``convert_datascrubbing_config(settings)``, and ``scrub_data`` runs ``pii_strip_event`` once per
config, in that order. The order matters: an advanced rule that masks a value runs before the
defaults see it. :class:`Scrubber` does the same, with each config serialized once up front, so an
event costs only the Relay calls.

Fast path: for normalized events and an analysed configuration (the defaults, with or without
``scrub_ip_addresses`` and ``sensitive_fields``; never with ``pii_config``), ``scrub_precheck.py``
first checks whether any rule could change the event; if none can, Relay is skipped and the event
is returned exactly as Relay would return it. See :meth:`Scrubber.scrub`.

Failure policy: unscrubbed data must never be stored. When Relay (or JSON encoding) fails on an
event, :meth:`Scrubber.scrub` raises :class:`ScrubbingError` (``reason = "scrubbing_failed"``); the
caller records the event as an ``invalid`` outcome with that reason instead of storing it.

Worker processes: settings are a frozen dataclass of plain data (picklable); a :class:`Scrubber`
pickles as its settings and is rebuilt on the other side through :func:`scrubber_for`'s
per-process cache, so every worker compiles each distinct configuration once.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson
from sentry_relay import convert_datascrubbing_config, pii_strip_event, validate_pii_config
from sentry_relay.exceptions import RelayError

from .errors import ConfigError, ScrubbingError
from .scrub_precheck import only_lengths_in_meta, precheck_for, relay_timestamp

__all__ = ["ScrubbingSettings", "Scrubber", "ScrubbingError", "scrubber_for", "merge_pii_configs"]

#: The prefix Sentry gives a project's advanced rules (their names show in ``_meta`` remarks).
PROJECT_PREFIX = "project:"
#: Scrubbers kept per process by :func:`scrubber_for`; the cache is cleared when it reaches this.
MAX_CACHED_SCRUBBERS = 1024


@dataclass(frozen=True, kw_only=True)
class ScrubbingSettings:
    """``[scrubbing]``: Sentry's data-scrubbing settings plus advanced ``pii_config`` rules.

    ``enabled`` is Sentry's ``scrubData``: off, the default rules and ``sensitive_fields`` are not
    applied, but ``pii_config`` rules still are (as in Sentry). ``safe_fields`` is Sentry's
    ``excludeFields`` ("safe fields"). Lists become tuples and ``pii_config`` a private deep copy,
    so a settings object is immutable, hashable and picklable.
    """

    enabled: bool = True
    scrub_defaults: bool = True
    scrub_ip_addresses: bool = False
    sensitive_fields: tuple[str, ...] = ()
    safe_fields: tuple[str, ...] = ()
    # Not hashed (a dict cannot be); equality still compares it, so caches keyed by settings
    # tell configurations apart.
    pii_config: dict | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensitive_fields", tuple(self.sensitive_fields))
        object.__setattr__(self, "safe_fields", tuple(self.safe_fields))
        if self.pii_config is not None:
            # A copy, so that the caller mutating their dict cannot change cached scrubbers.
            object.__setattr__(self, "pii_config", copy.deepcopy(self.pii_config))

    def datascrubbing_config(self) -> dict[str, Any]:
        """Return these settings in the camelCase shape ``convert_datascrubbing_config`` reads."""
        return {
            "scrubData": self.enabled,
            "scrubDefaults": self.scrub_defaults,
            "scrubIpAddresses": self.scrub_ip_addresses,
            "sensitiveFields": list(self.sensitive_fields),
            "excludeFields": list(self.safe_fields),
        }

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "scrubbing", *, label: str = "config") -> "ScrubbingSettings":
        """Validate a config-file table (``[scrubbing]``) strictly and return the settings.

        ``pii_config`` may be a table or a JSON string (as copied from Sentry's "Advanced Data
        Scrubbing" editor). The result is compiled once (see :class:`Scrubber`), so every problem
        shows here. Does not block beyond that CPU work.

        Raises ConfigError naming ``where.key`` for an unknown key or a wrong type, and carrying
        Relay's own message for an invalid ``pii_config``.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{label}: {where!r} must be a table")
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"{where}.{key}"
            if key not in names:
                raise ConfigError(f"{label}: unknown key '{path}'")
            if key in ("enabled", "scrub_defaults", "scrub_ip_addresses"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{label}: {path} must be bool, got {value!r}")
                values[key] = value
            elif key in ("sensitive_fields", "safe_fields"):
                values[key] = _field_names(value, path, label)
            else:
                values[key] = _parse_pii_config(value, path, label)
        settings = cls(**values)
        Scrubber(settings, label=label, where=where)  # compile now: every error at load time
        return settings


class Scrubber:
    """Scrubs events with one :class:`ScrubbingSettings`; the Relay configs are built once.

    Safe to share between threads (immutable after construction; Relay's calls are re-entrant).
    Pickles as its settings and is rebuilt through :func:`scrubber_for` in the receiving process.
    """

    def __init__(self, settings: ScrubbingSettings, *, label: str = "config", where: str = "scrubbing") -> None:
        """Compile ``settings`` into the Relay configs to apply. Blocks on CPU (~0.1 ms).

        Raises ConfigError (with Relay's message) if the settings or ``pii_config`` are invalid.
        """
        self.settings = settings
        configs: list[dict] = []
        if settings.pii_config:
            _check_pii_config(settings.pii_config, f"{where}.pii_config", label)
            advanced = merge_pii_configs([(PROJECT_PREFIX, settings.pii_config)])
            if advanced.get("applications"):
                configs.append(advanced)
        try:
            converted = convert_datascrubbing_config(settings.datascrubbing_config(),
                                                     json_dumps=orjson.dumps, json_loads=orjson.loads)
        except (RelayError, ValueError, TypeError) as exc:
            raise ConfigError(f"{label}: {where}: {_first_line(exc)}") from exc
        if converted.get("applications"):
            configs.append(converted)
        # Serialized once: Relay takes the config as JSON text, and encoding the ~4.5 KB default
        # config again for every event measured ~15 % of the whole per-event cost.
        self._configs: tuple[bytes, ...] = tuple(orjson.dumps(config) for config in configs)
        # The exact fast path (scrub_precheck.py): None unless this configuration was analysed.
        self._precheck = precheck_for(configs, settings.sensitive_fields) if configs else None

    @property
    def has_fast_path(self) -> bool:
        """True if :meth:`scrub` can skip Relay for normalized events no rule would change."""
        return self._precheck is not None

    @property
    def active(self) -> bool:
        """True if any rule applies; False means :meth:`scrub` returns events as they are."""
        return bool(self._configs)

    def configs(self) -> list[dict]:
        """Return the Relay PII configs applied, in order (advanced rules first)."""
        return [orjson.loads(config) for config in self._configs]

    def scrub(self, event: dict, *, normalized: bool = False) -> dict:
        """Return ``event`` scrubbed by Relay; Relay records what it removed in ``_meta``.

        With ``normalized=True`` (the caller promises ``event`` is the normalizer's output, plus
        ``received`` and filled-in IPs, as the process stage makes it) and a configuration
        :mod:`~minisentry.scrub_precheck` has analysed, an event that no rule could change is
        returned without calling Relay, exactly as Relay would return it: unchanged except for
        ``received``, which Relay rounds to the microsecond. That result is a shallow copy sharing
        nested values with ``event``.

        Blocks on CPU (Relay's Rust code; safe in a worker thread or process). ``event`` itself is
        not modified; with no rule to apply it is returned as is.

        Raises ScrubbingError if the event cannot be scrubbed (not a dict, not JSON-encodable,
        nested deeper than Relay parses): such an event must not be stored.
        """
        if not isinstance(event, dict):
            raise ScrubbingError(f"cannot scrub a {type(event).__name__}: an event must be an object")
        payload = event
        if normalized and self._precheck is not None and only_lengths_in_meta(event.get("_meta")):
            # Relay rewrites some _meta on its way through (errors, remarks, original values); the
            # normalizer's "this list was trimmed from N items" notes come back as they are.
            clean = self.unchanged_by_relay(event)
            if clean is not None:
                return clean
        for config in self._configs:
            try:
                payload = pii_strip_event(config, payload, json_dumps=_dumps, json_loads=orjson.loads)
            except (RelayError, ValueError, TypeError, OverflowError, RecursionError) as exc:
                # orjson's encode errors are TypeErrors; Relay's parse and panic errors RelayErrors.
                raise ScrubbingError(f"scrubbing failed: {_first_line(exc)}") from exc
            if not isinstance(payload, dict):
                raise ScrubbingError("scrubbing failed: Relay did not return an event object")
        return payload

    def unchanged_by_relay(self, event: dict) -> dict | None:
        """The fast path alone: what Relay would return for normalized ``event``, or None.

        None means "a rule might apply (or this configuration has no precheck): ask Relay".
        Pure CPU (~0.1 ms for a 6 KB event); never raises.
        """
        if self._precheck is None:
            return None
        # Relay rewrites `received` (a timestamp) rounded to the microsecond; the precheck looks
        # at the event as Relay would return it, so that rewritten value is what it checks.
        clean = event
        if "received" in event:
            rounded = relay_timestamp(event["received"])
            if rounded is None:
                return None
            clean = dict(event)
            clean["received"] = rounded
        try:
            dump = orjson.dumps(clean)
        except (TypeError, ValueError, OverflowError):
            return None  # Relay's path raises the ScrubbingError
        return None if self._precheck.could_change(clean, dump) else clean  # type: ignore[union-attr]

    def __reduce__(self) -> tuple:
        return scrubber_for, (self.settings,)

    def __repr__(self) -> str:
        return f"Scrubber({self.settings!r})"


_MISSING = object()
_cache: dict[ScrubbingSettings, Scrubber] = {}
_cache_lock = threading.Lock()


def scrubber_for(settings: ScrubbingSettings) -> Scrubber:
    """Return the process's :class:`Scrubber` for ``settings``, building it on first use.

    Does not block except to compile a new configuration (~0.1 ms, once per process). Thread-safe.
    Raises ConfigError if the settings are invalid.
    """
    global _cache
    scrubber = _cache.get(settings)
    if scrubber is None:
        scrubber = Scrubber(settings)
        with _cache_lock:
            if len(_cache) >= MAX_CACHED_SCRUBBERS:
                _cache = {}
            _cache[settings] = scrubber
    return scrubber


def merge_pii_configs(prefixes_and_configs: Iterable[tuple[str, Mapping | None]]) -> dict:
    """Merge PII configs into one, prefixing each one's own rule names, as Sentry does.

    Sentry merges an organization's (``organization:``) and a project's (``project:``) advanced
    rules this way: rules are renamed ``<prefix><name>``, references to them (in ``applications``
    and in ``multiple``/``alias`` rules) follow, built-in ``@rules`` stay as they are, and
    applications of the same selector are concatenated in order. Pure; never raises on
    well-formed configs.
    """
    merged: dict[str, Any] = {}
    for prefix, config in prefixes_and_configs:
        if not config:
            continue
        rules = config.get("rules") or {}
        for name, rule in rules.items():
            merged.setdefault("rules", {})[f"{prefix}{name}"] = _prefix_references(rule, rules, prefix)
        for selector, applied in (config.get("applications") or {}).items():
            target = merged.setdefault("applications", {}).setdefault(selector, [])
            target.extend(f"{prefix}{name}" if name in rules else name for name in applied)
    return merged


def _prefix_references(rule: Any, rules: Mapping, prefix: str) -> Any:
    if not isinstance(rule, dict):
        return rule
    rule = copy.deepcopy(rule)
    if rule.get("type") == "multiple" and isinstance(rule.get("rules"), list):
        rule["rules"] = [f"{prefix}{name}" if name in rules else name for name in rule["rules"]]
    # Sentry only renames an alias's target when it is written as a ``multiple`` rule with
    # ``rule``; Relay's ``alias`` type uses ``rule`` too, so rename it as well, or an alias of a
    # custom rule would point at a name that no longer exists after prefixing.
    if rule.get("type") in ("multiple", "alias") and rule.get("rule") in rules:
        rule["rule"] = f"{prefix}{rule['rule']}"
    return rule


def _dumps(value: Any) -> bytes:
    # The configs are handed to pii_strip_event already encoded; only the event needs encoding.
    return value if isinstance(value, bytes) else orjson.dumps(value)


def _first_line(exc: BaseException) -> str:
    # Relay appends a Rust stack trace after a blank line; the first line is the message.
    return str(exc).strip().split("\n\nstacktrace:", 1)[0].strip() or type(exc).__name__


def _field_names(value: Any, path: str, label: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{label}: {path} must be a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{label}: {path}[{index}] must be a non-empty string, got {item!r}")
    return tuple(value)


def _parse_pii_config(value: Any, path: str, label: str) -> dict | None:
    if isinstance(value, str):
        text = value  # validated as written, so Relay's line numbers point into it
    elif isinstance(value, Mapping):
        try:
            text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
        except TypeError as exc:
            raise ConfigError(f"{label}: {path} must hold only JSON values: {exc}") from exc
    else:
        raise ConfigError(f"{label}: {path} must be a table or a JSON string, got {value!r}")
    try:
        validate_pii_config(text)
        config = orjson.loads(text)
    except (ValueError, RelayError) as exc:
        raise ConfigError(f"{label}: {path}: {_first_line(exc)}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{label}: {path} must be a JSON object (with 'rules' and 'applications')")
    return config or None  # rule references are checked when the Scrubber is built


def _check_pii_config(config: Mapping, path: str, label: str) -> None:
    try:
        validate_pii_config(orjson.dumps(config).decode())
    except (ValueError, TypeError, RelayError) as exc:
        raise ConfigError(f"{label}: {path}: {_first_line(exc)}") from exc
    # Relay ignores a reference to an undefined rule, which would silently leave data unscrubbed;
    # a typo in a config file should be an error instead. Built-in rules start with "@".
    rules = config.get("rules") or {}
    references = [(f"applications.{selector}", name)
                  for selector, names in (config.get("applications") or {}).items() for name in names]
    for rule_name, rule in rules.items():
        if rule.get("type") == "multiple":
            references += [(f"rules.{rule_name}", name) for name in rule.get("rules") or []]
        if rule.get("type") == "alias" and "rule" in rule:
            references.append((f"rules.{rule_name}", rule["rule"]))
    for where, name in references:
        if isinstance(name, str) and not name.startswith("@") and name not in rules:
            raise ConfigError(f"{label}: {path}: {where} refers to undefined rule {name!r}")
