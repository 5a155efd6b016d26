"""Quotas and rate limits, counted at the edge, after Relay's ``relay-quotas``. No I/O of its own.

A :class:`Quota` caps how much of some data categories a scope may send per window, e.g. 100 errors
a minute per project. The relay calls :meth:`RateLimiter.check` once per envelope, *before* the
envelope enters the pipeline, so what is over quota is never parsed, processed or stored. The rules,
as in Relay:

- **Fixed windows aligned to the window length.** The counter for a quota lives in slot
  ``now // window``; a 60 s window restarts on every full minute (Relay shifts windows by
  ``organization_id % window``; minisentry has one organization, so the shift is 0). ``Retry-After``
  is the time to the end of the slot, rounded up, at least 1 s.
- **Only what is allowed is counted.** An item over quota is rejected and not counted. All quotas
  matching one category are checked and incremented together: if any of them rejects, none is
  incremented (Relay's ``is_rate_limited.lua``). Categories are checked independently, so in an
  envelope with an error and a transaction where only errors are limited, the transaction passes.
- **Quantities**: one per item; attachments count their payload *bytes* (category ``attachment``,
  as in Sentry). Client reports are never counted (they are outcomes, not data). Sentry also counts a
  transaction's spans in ``span`` and has ``*_indexed`` categories; minisentry does not.
- **Dependent items**: when an envelope's event (``error``, ``default``, ``security`` or
  ``transaction``) is rejected, its ``attachment``, ``profile`` and ``span`` items are rejected with
  it, uncounted (Relay's ``EnvelopeLimiter``); the header announces only the event's limit.
- **``limit = 0`` rejects everything** it matches without counting, with ``Retry-After`` 60 s
  (Relay's ``REJECT_ALL_SECS``); ``limit`` unset counts without ever rejecting.
- **Active limits**: once a quota rejects, the limiter remembers it until its window ends. Later
  envelopes for those categories are rejected without touching the counters (the cheap path), and
  :meth:`RateLimiter.active_limits` lists them so a 200 response can announce fully blocked categories.

Counters sit behind the small :class:`QuotaCounters` protocol (:mod:`minisentry.quota_counters`):
:class:`MemoryQuotaCounters` now; a Redis implementation can run each
:meth:`~QuotaCounters.check_and_increment` call as one Lua script. The ``X-Sentry-Rate-Limits``
header model and its format/parse live in :mod:`minisentry.ratelimits`; both modules' public names
are re-exported here.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .envelope import Item
from .errors import ConfigError
from .outcomes import category_of_item
from .quota_counters import CounterRequest, ExpiringTable, MemoryQuotaCounters, QuotaCounters, _is_int
from .ratelimits import RateLimit, format_rate_limits, merge_rate_limit, parse_rate_limits

__all__ = [
    "CATEGORIES",
    "SCOPES",
    "REJECT_ALL_SECS",
    "Quota",
    "quotas_from_config",
    "RateLimit",
    "RateLimitResult",
    "format_rate_limits",
    "parse_rate_limits",
    "CounterRequest",
    "QuotaCounters",
    "MemoryQuotaCounters",
    "RateLimiter",
    "slot_end",
    "envelope_quantities",
    "partition_items",
]

#: The data categories a quota may name: those ``category_of_item`` produces, in the order of
#: Relay's ``DataCategory`` numbering (the order categories are listed in the header).
CATEGORIES = (
    "default", "error", "transaction", "security", "attachment", "session", "profile", "replay",
    "monitor", "span", "user_report_v2", "feedback", "metric_bucket", "profile_chunk", "log_item",
)
#: ``organization``: all projects together (minisentry has one organization); ``project``: each
#: project separately; ``key``: each DSN public key separately.
SCOPES = ("organization", "project", "key")
#: Seconds a ``limit = 0`` quota tells clients to stay away (Relay's ``REJECT_ALL_SECS``).
REJECT_ALL_SECS = 60
#: Most quotas one config may hold, and the longest window (a bound on keys and on memory).
MAX_QUOTAS = 1000
MAX_WINDOW = 366 * 24 * 3600

# Units a counter adds up. Relay refuses a counted quota whose categories mix units (or that covers
# all categories, which mixes them), because it would add attachment bytes to event counts.
_UNITS = {"attachment": "bytes", "session": "batched"}
# Event categories, and the items that share their fate when the event is rate limited.
_EVENT_CATEGORIES = ("default", "error", "security", "transaction")
_DEPENDENT_CATEGORIES = ("attachment", "profile", "span")
_ORDER = {category: index for index, category in enumerate(CATEGORIES)}
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Reason codes go into the header verbatim: no separators (`:` `;` `,`) and no spaces.
_REASON_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEY_RE = re.compile(r"[0-9a-f]{32}")
_MAX_INT = 2**63 - 1  # what a Redis counter (INCRBY) can hold


def slot_end(now: float, window: int) -> int:
    """Return the end (unix seconds) of the fixed ``window``-second slot that ``now`` falls in."""
    return (int(now // window) + 1) * window


def _seconds_until(until: float, now: float) -> int:
    # Relay rounds the remaining time up; a limit that is still active never says 0.
    return max(1, math.ceil(until - now))


def _sorted_categories(categories: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(categories, key=lambda category: (_ORDER.get(category, len(_ORDER)), category)))


# -- quotas -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """One quota: at most ``limit`` of ``categories`` per ``window`` seconds in each ``scope``.

    ``categories`` empty means every category (only allowed with ``limit = 0``, see below).
    ``limit`` 0 rejects everything matching, ``None`` counts without rejecting. ``project`` and
    ``key`` (a 32-hex public key) restrict the quota to one project or key; ``scope`` decides how
    counting is split (one counter for all, per project, or per key). ``reason_code`` is what
    clients and outcomes are told. Construction raises ValueError naming the bad field; a counted
    quota must list its categories and they must share a unit (counts, attachment bytes, sessions).
    """

    id: str
    categories: tuple[str, ...] = ()
    scope: str = "project"
    limit: int | None = None
    window: int = 60
    reason_code: str | None = None
    project: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or _ID_RE.fullmatch(self.id) is None:
            raise ValueError(f"id must be 1-64 letters, digits, '.', '_' or '-', got {self.id!r}")
        categories = tuple(self.categories)
        for category in categories:
            if category not in _ORDER:
                raise ValueError(f"categories: unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        if len(set(categories)) != len(categories):
            raise ValueError(f"categories lists a category twice: {list(categories)}")
        object.__setattr__(self, "categories", categories)
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.limit is not None and (not _is_int(self.limit) or not 0 <= self.limit <= _MAX_INT):
            raise ValueError(f"limit must be an integer >= 0, got {self.limit!r}")
        if not _is_int(self.window) or not 1 <= self.window <= MAX_WINDOW:
            raise ValueError(f"window must be 1..{MAX_WINDOW} seconds, got {self.window!r}")
        if self.reason_code is not None and (
                not isinstance(self.reason_code, str) or _REASON_RE.fullmatch(self.reason_code) is None):
            raise ValueError(f"reason_code must be 1-64 letters, digits, '.', '_' or '-', got {self.reason_code!r}")
        if self.project is not None and (not _is_int(self.project) or self.project <= 0):
            raise ValueError(f"project must be a positive project id, got {self.project!r}")
        if self.key is not None and (not isinstance(self.key, str) or _KEY_RE.fullmatch(self.key) is None):
            raise ValueError(f"key must be a 32-hex public key, got {self.key!r}")
        if self.limit != 0:
            if not categories:
                raise ValueError("categories must be listed for a counted quota (limit != 0): counting every "
                                 "category would add attachment bytes to item counts")
            units = {_UNITS.get(category, "count") for category in categories}
            if len(units) > 1:
                raise ValueError(f"categories mix units ({', '.join(sorted(units))}) in a counted quota: "
                                 "attachments count bytes, sessions count updates, everything else items")

    @classmethod
    def from_mapping(cls, raw: Any, where: str, *, label: str = "config") -> "Quota":
        """Build a quota from a config table (``[[quotas]]``). Does not block.

        ``where`` names the table in messages (``quotas[0]``), ``label`` the file. Raises
        ConfigError naming the key for unknown keys, wrong types, a missing ``id`` or ``window``
        (required unless ``limit = 0``) and invalid values.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{label}: {where} must be a table")
        types: dict[str, tuple[type, str]] = {
            "id": (str, "a string"), "categories": (list, "a list of strings"), "scope": (str, "a string"),
            "limit": (int, "an integer"), "window": (int, "an integer"), "reason_code": (str, "a string"),
            "project": (int, "an integer"), "key": (str, "a string"),
        }
        for name, value in raw.items():
            if name not in types:
                raise ConfigError(f"{label}: unknown key '{where}.{name}' (keys: {', '.join(types)})")
            kind, described = types[name]
            if not isinstance(value, kind) or isinstance(value, bool) or (
                    kind is list and not all(isinstance(item, str) for item in value)):
                raise ConfigError(f"{label}: {where}.{name} must be {described}, got {value!r}")
        if "id" not in raw:
            raise ConfigError(f"{label}: {where} is missing required key(s) id")
        if raw.get("limit") != 0 and "window" not in raw:
            raise ConfigError(f"{label}: {where} is missing required key(s) window (seconds; needed unless limit = 0)")
        values = dict(raw)
        if "categories" in values:
            values["categories"] = tuple(values["categories"])
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(f"{label}: {where}.{exc}") from exc

    def matches(self, project_id: int, public_key: str | None) -> bool:
        """Return whether envelopes of this project, sent with this key, are subject to the quota."""
        if self.project is not None and self.project != project_id:
            return False
        return self.key is None or (public_key or "").lower() == self.key

    def applies_to(self, category: str) -> bool:
        """Return whether the quota covers ``category`` (an empty ``categories`` covers all)."""
        return not self.categories or category in self.categories

    def scope_instance(self, project_id: int, public_key: str | None) -> str | None:
        """Return which counter instance the quota uses for this project and key.

        ``None`` for a key-scoped quota when there is no key (embedded submissions): it is skipped,
        as Relay skips key quotas without a key.
        """
        if self.scope == "organization":
            return ""
        if self.scope == "project":
            return str(project_id)
        return public_key.lower() if public_key else None

    def rate_limit(self, retry_after: int) -> "RateLimit":
        """Return the rate limit this quota announces when it rejects, ``retry_after`` seconds long."""
        return RateLimit(retry_after, _sorted_categories(self.categories), self.scope, self.reason_code)


def quotas_from_config(raw: Any, *, label: str = "config") -> tuple[Quota, ...]:
    """Build the ``[[quotas]]`` array of a config file. Does not block.

    Raises ConfigError when it is not an array of tables, holds more than ``MAX_QUOTAS`` quotas,
    uses an id twice (the id names the counter), or a quota is invalid (see Quota.from_mapping).
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{label}: 'quotas' must be an array of tables ([[quotas]])")
    if len(raw) > MAX_QUOTAS:
        raise ConfigError(f"{label}: at most {MAX_QUOTAS} quotas, got {len(raw)}")
    quotas = tuple(Quota.from_mapping(table, f"quotas[{index}]", label=label) for index, table in enumerate(raw))
    seen: set[str] = set()
    for index, quota in enumerate(quotas):
        if quota.id in seen:
            raise ConfigError(f"{label}: quotas[{index}].id {quota.id!r} is used twice (the id names the counter)")
        seen.add(quota.id)
    return quotas


# -- the result of a check --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """What :meth:`RateLimiter.check` decided for one envelope.

    ``accepted``: category → quantity that passed (and was counted); ``rejected``: category → the
    longest limit that rejected it (dependent items carry their event's limit); ``limits``: the
    distinct limits to announce in ``X-Sentry-Rate-Limits``.
    """

    accepted: dict[str, int]
    rejected: dict[str, RateLimit]
    limits: tuple[RateLimit, ...]

    @property
    def is_limited(self) -> bool:
        """Whether anything was rejected."""
        return bool(self.rejected)

    @property
    def retry_after(self) -> int | None:
        """The longest ``retry_after`` of the limits (the ``Retry-After`` value), or None."""
        return max((limit.retry_after for limit in self.limits), default=None)

    def header(self) -> str:
        """The ``X-Sentry-Rate-Limits`` value for this envelope's limits (``""`` if none)."""
        return format_rate_limits(self.limits)

    def reason(self, category: str) -> str:
        """The outcome reason for a rejected category: its limit's reason code, or ``""``."""
        limit = self.rejected.get(category)
        return (limit.reason_code or "") if limit is not None else ""


# -- the limiter ------------------------------------------------------------------------------------


class RateLimiter:
    """Checks envelopes against quotas, counting what it allows in ``counters``.

    ``clock`` returns unix seconds. It is the wall clock on purpose: windows align to it (a 60 s
    window restarts on the minute) and a shared Redis needs every process to agree on the slot.
    At most ``max_active_limits`` active limits are remembered; past that, new ones are not, which
    only costs the cheap path: the counters still reject. Raises ValueError if it is not positive.
    """

    def __init__(self, counters: QuotaCounters, clock: Callable[[], float] = time.time, *,
                 max_active_limits: int = 10_000) -> None:
        if not _is_int(max_active_limits) or max_active_limits <= 0:
            raise ValueError(f"max_active_limits must be a positive integer, got {max_active_limits!r}")
        self.counters = counters
        self.clock = clock
        self._active: ExpiringTable[tuple[Quota, str], bool] = ExpiringTable(max_active_limits)

    async def check(self, project_id: int, public_key: str | None, quantities: Mapping[str, int],
                    quotas: Sequence[Quota]) -> RateLimitResult:
        """Check (and count what passes of) ``quantities`` — category → items, attachment bytes.

        Quotas that do not match the project or key are ignored. Categories blocked by an active
        limit or a ``limit = 0`` quota are rejected without touching the counters; the rest cost
        at most two counter calls (event categories first, so dependents of a rejected event are
        not counted). Awaits the counters; raises ValueError for a negative quantity and whatever
        the counter backend raises.
        """
        now = self.clock()
        for category, quantity in quantities.items():
            if not _is_int(quantity) or quantity < 0:
                raise ValueError(f"quantity of {category!r} must be an integer >= 0, got {quantity!r}")
        wanted = {category: quantity for category, quantity in quantities.items() if quantity > 0}
        applicable = [(quota, instance) for quota in quotas if quota.matches(project_id, public_key)
                      and (instance := quota.scope_instance(project_id, public_key)) is not None]
        rejected: dict[str, RateLimit] = {}
        limits: list[RateLimit] = []

        def reject(category: str, limit: RateLimit) -> None:
            merge_rate_limit(limits, limit)
            current = rejected.get(category)
            if current is None or limit.retry_after > current.retry_after:
                rejected[category] = limit

        self._active.expire(now)
        for category in wanted:
            for quota, instance in applicable:
                if not quota.applies_to(category):
                    continue
                if quota.limit == 0:
                    reject(category, quota.rate_limit(REJECT_ALL_SECS))
                elif (until := self._active.expires_at((quota, instance))) is not None:
                    reject(category, quota.rate_limit(_seconds_until(until, now)))

        pending = _sorted_categories(c for c in wanted if c not in rejected)
        await self._count([c for c in pending if c in _EVENT_CATEGORIES], wanted, applicable, now, reject)
        event_limits = [rejected[c] for c in _sorted_categories(wanted) if c in _EVENT_CATEGORIES and c in rejected]
        rest = []
        for category in pending:
            if category in _EVENT_CATEGORIES:
                continue
            if event_limits and category in _DEPENDENT_CATEGORIES:
                rejected[category] = event_limits[0]  # not announced: the event's limit covers it
            else:
                rest.append(category)
        await self._count(rest, wanted, applicable, now, reject)
        accepted = {category: quantity for category, quantity in wanted.items() if category not in rejected}
        return RateLimitResult(accepted, rejected, tuple(limits))

    async def _count(self, categories: list[str], wanted: Mapping[str, int],
                     applicable: list[tuple[Quota, str]], now: float,
                     reject: Callable[[str, RateLimit], None]) -> None:
        groups: list[list[CounterRequest]] = []
        plans: list[tuple[str, list[tuple[Quota, str, int]]]] = []
        for category in categories:
            group, used = [], []
            for quota, instance in applicable:
                if not quota.applies_to(category):
                    continue
                expires_at = slot_end(now, quota.window)
                # Like Relay's `quota:{id}{org}{scope id}:{slot}`, plus scope and window, so that
                # editing either starts a fresh counter while editing the limit keeps the count.
                key = f"quota:{quota.id}:{quota.scope}:{instance}:{quota.window}:{expires_at // quota.window - 1}"
                group.append(CounterRequest(key, quota.limit, wanted[category], expires_at))
                used.append((quota, instance, expires_at))
            if group:
                groups.append(group)
                plans.append((category, used))
        if not groups:
            return
        results = await self.counters.check_and_increment(groups, now)
        for (category, used), flags in zip(plans, results):
            for (quota, instance, expires_at), flag in zip(used, flags):
                if flag:
                    reject(category, quota.rate_limit(_seconds_until(expires_at, now)))
                    self._active.set((quota, instance), True, expires_at)

    def active_limits(self, project_id: int, public_key: str | None,
                      quotas: Sequence[Quota]) -> tuple[RateLimit, ...]:
        """Return the limits that fully block categories for this project and key right now.

        That is every ``limit = 0`` quota and every quota that rejected and whose window has not
        ended, for announcing on a 200 response. Does not block, touches no counter, raises nothing.
        """
        now = self.clock()
        self._active.expire(now)
        limits: list[RateLimit] = []
        for quota in quotas:
            instance = quota.scope_instance(project_id, public_key)
            if instance is None or not quota.matches(project_id, public_key):
                continue
            if quota.limit == 0:
                merge_rate_limit(limits, quota.rate_limit(REJECT_ALL_SECS))
            elif (until := self._active.expires_at((quota, instance))) is not None:
                merge_rate_limit(limits, quota.rate_limit(_seconds_until(until, now)))
        return tuple(limits)


# -- envelopes --------------------------------------------------------------------------------------


def _item_quantity(item: Item) -> tuple[str, int] | None:
    if item.type == "client_report":
        return None  # outcomes about the SDK's own drops, never rate limited (as in Relay)
    category = category_of_item(item.type)
    return category, len(item.payload) if category == "attachment" else 1


def envelope_quantities(items: Iterable[Item]) -> dict[str, int]:
    """Return category → quantity for the items: 1 per item, payload bytes for attachments.

    Client reports are left out. Does not block; raises nothing.
    """
    quantities: dict[str, int] = {}
    for item in items:
        counted = _item_quantity(item)
        if counted is not None:
            category, quantity = counted
            quantities[category] = quantities.get(category, 0) + quantity
    return quantities


def partition_items(items: Iterable[Item],
                    result: RateLimitResult) -> tuple[list[Item], list[tuple[Item, str, RateLimit]]]:
    """Split items into those to keep and (item, category, limit) for those rate limited.

    Client reports are always kept. Does not block; raises nothing.
    """
    kept: list[Item] = []
    dropped: list[tuple[Item, str, RateLimit]] = []
    for item in items:
        counted = _item_quantity(item)
        limit = result.rejected.get(counted[0]) if counted is not None else None
        if counted is None or limit is None:
            kept.append(item)
        else:
            dropped.append((item, counted[0], limit))
    return kept, dropped
