"""Fast lane or slow lane: per-project time budgets (Sentry's "low priority queue"). Pure logic.

A project whose events eat too much processing time is *demoted* to the slow lane, so its slow work
cannot starve everybody else's fast work. The rules, after Sentry's symbolication LPQ:

- **Cost is quadratic.** An event that took ``d`` seconds costs ``d²`` (unit: s²). Ten 1 s events
  cost 10; one 10 s event costs 100. Slow events are punished far more than many fast ones, because
  what hurts a fixed number of workers is one event holding a worker for a long time.
- **Costs are summed per project in time buckets over a sliding window.** Each project has a ring of
  ``window_seconds / bucket_seconds`` buckets (a fixed-size ``array``; recording never allocates).
  The windowed cost is the sum of the ring: the current (partial) bucket plus the ones before it.
- **The budget is a rate**: cost units per second averaged over the window. A project is over
  budget when ``windowed cost / window_seconds > budget``.
- **Demotion is sticky.** A project found over budget is demoted for at least ``backoff_seconds``,
  and comes back only once the backoff has passed *and* its windowed cost is under budget again.
  Returning is not sticky: a project that is over budget again is demoted at once.
- **Decisions are made when asked** (:meth:`LaneSelector.lane_of`), i.e. when an event is routed
  or taken from a queue; :meth:`LaneSelector.should_switch` caps how often one event may move.
- **Operators may force** a project into either lane; forcing beats every automatic decision.

Defaults (:class:`LaneConfig`) and why:

- ``bucket_seconds=10``: Sentry's bucket size. 30 buckets per project with the default window.
- ``window_seconds=300``: long enough that one burst is averaged with the calm around it.
- ``budget=5.0`` s²/s: a project that keeps one worker busy without pause with events of ``d``
  seconds spends ``d²`` every ``d`` seconds, i.e. ``d`` per second. So a project may keep one worker
  permanently busy with 5 s events, or five workers with 1 s events, and stay fast; one event longer
  than ``sqrt(5 * 300)`` ≈ 39 s demotes its project by itself.
- ``backoff_seconds=600``: twice the window, so the cost that caused a demotion has aged out of the
  window before the project can come back: no flip-flopping between lanes.
- ``max_projects=10_000``: each tracked project is one ring of 30 doubles (a few hundred bytes),
  so the selector stays within a few MB whatever the number of projects.
- ``max_lane_switches=1``: an event queued before its project changed lanes may move once, never
  back and forth.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FAST", "SLOW", "Lane", "LaneConfig", "LaneSelector", "lane_config_of", "make_lane_selector"]

Lane = Literal["fast", "slow"]
FAST: Lane = "fast"
SLOW: Lane = "slow"
_LANES = (FAST, SLOW)

# A ring longer than this is a misconfiguration (a 1 s bucket over an hour), not a need.
_MAX_BUCKETS = 3600


def _number(name: str, value: Any, *, above: float | None = None, at_least: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"LaneConfig.{name} must be a finite number, got {value!r}")
    if above is not None and not value > above:
        raise ValueError(f"LaneConfig.{name} must be greater than {above}, got {value!r}")
    if at_least is not None and not value >= at_least:
        raise ValueError(f"LaneConfig.{name} must be at least {at_least}, got {value!r}")


def _integer(name: str, value: Any, *, at_least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"LaneConfig.{name} must be an integer, got {value!r}")
    if value < at_least:
        raise ValueError(f"LaneConfig.{name} must be at least {at_least}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class LaneConfig:
    """Settings of a :class:`LaneSelector`; see the module docstring for the defaults' reasons.

    Raises ValueError naming the field when a value is out of range: every number must be finite;
    ``bucket_seconds``, ``window_seconds`` and ``budget`` must be > 0; ``window_seconds`` must be a
    whole multiple (1 to 3600 times) of ``bucket_seconds``; ``backoff_seconds`` >= 0;
    ``max_projects`` an integer >= 1; ``max_lane_switches`` an integer >= 0.
    """

    bucket_seconds: float = 10.0
    window_seconds: float = 300.0
    budget: float = 5.0
    backoff_seconds: float = 600.0
    max_projects: int = 10_000
    max_lane_switches: int = 1

    def __post_init__(self) -> None:
        _number("bucket_seconds", self.bucket_seconds, above=0)
        _number("window_seconds", self.window_seconds, above=0)
        _number("budget", self.budget, above=0)
        _number("backoff_seconds", self.backoff_seconds, at_least=0)
        _integer("max_projects", self.max_projects, at_least=1)
        _integer("max_lane_switches", self.max_lane_switches, at_least=0)
        ratio = self.window_seconds / self.bucket_seconds
        if not 1 <= round(ratio) <= _MAX_BUCKETS or abs(ratio - round(ratio)) > 1e-9 * ratio:
            raise ValueError(
                f"LaneConfig.window_seconds must be 1 to {_MAX_BUCKETS} times bucket_seconds "
                f"({self.bucket_seconds!r}), got {self.window_seconds!r}"
            )

    @property
    def buckets(self) -> int:
        """How many buckets one project's ring holds (``window_seconds / bucket_seconds``)."""
        return round(self.window_seconds / self.bucket_seconds)


class _Usage:
    """One project's ring of bucket costs, and its demotion."""

    __slots__ = ("costs", "head", "demoted_until")

    def __init__(self, buckets: int, head: int) -> None:
        self.costs = array("d", bytes(8 * buckets))  # zeros; its size never changes
        self.head = head  # absolute index of the newest bucket the ring holds
        self.demoted_until: float | None = None  # not None: demoted (backoff ends then)

    def advance(self, index: int) -> None:
        """Move the ring forward to bucket ``index``, zeroing the buckets that left the window."""
        gap = index - self.head
        if gap <= 0:
            return  # time never goes backwards here: LaneSelector clamps it
        size = len(self.costs)
        for position in range(self.head + 1, self.head + 1 + min(gap, size)):
            self.costs[position % size] = 0.0
        self.head = index

    def add(self, index: int, cost: float) -> None:
        self.advance(index)
        self.costs[index % len(self.costs)] += cost

    def total(self, index: int) -> float:
        self.advance(index)
        return math.fsum(self.costs)


class LaneSelector:
    """Decides, per project, whether its events go to the fast or the slow lane. Never blocks.

    One instance per pipeline. Not thread-safe: call it from one thread (the event loop's); its
    methods never await, so anyio tasks on that loop may share it freely.

    Every method taking ``now`` reads ``clock()`` (default :func:`time.monotonic`) when ``now`` is
    None; tests inject a clock or pass ``now``. Time never goes backwards: a ``now`` earlier than
    the latest seen is treated as the latest seen. A ``now`` that is not finite raises ValueError.

    Memory is bounded: at most ``max_projects`` projects are tracked besides forced ones; at the
    limit the least recently seen one (by :meth:`record` or :meth:`lane_of`) is forgotten, with its
    costs and demotion. Forced projects are never forgotten; their number is the operator's choice.
    """

    def __init__(
        self, config: LaneConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config if config is not None else LaneConfig()
        self._clock = clock
        self._latest = -math.inf
        # Unforced projects in least-recently-seen-first order: the front is evicted first.
        self._usage: OrderedDict[int, _Usage] = OrderedDict()
        # Forced projects' usage lives apart, so eviction never has to skip over them.
        self._pinned: dict[int, _Usage] = {}
        self._forced: dict[int, Lane] = {}

    def __len__(self) -> int:
        """The number of projects whose costs are tracked (forced ones included)."""
        return len(self._usage) + len(self._pinned)

    def __contains__(self, project_id: object) -> bool:
        """Whether the costs of ``project_id`` are tracked (recorded and not evicted)."""
        return project_id in self._usage or project_id in self._pinned

    def record(self, project_id: int, duration_seconds: float, now: float | None = None) -> None:
        """Charge ``project_id`` the cost ``duration_seconds²`` in the bucket of ``now``.

        Call it when an event's processing ended (``now``) with the time it took. Starts tracking
        the project if needed, which may evict the least recently seen one. Raises ValueError if
        ``duration_seconds`` is negative or not finite, or ``now`` is not finite.
        """
        valid = isinstance(duration_seconds, (int, float)) and not isinstance(duration_seconds, bool)
        if not (valid and math.isfinite(duration_seconds) and duration_seconds >= 0):
            raise ValueError(f"duration_seconds must be a finite number >= 0, got {duration_seconds!r}")
        index = self._index(self._now(now))
        usage = self._find(project_id, touch=True)
        if usage is None:
            usage = self._track(project_id, index)
        usage.add(index, float(duration_seconds) * duration_seconds)

    def lane_of(self, project_id: int, now: float | None = None) -> Lane:
        """The lane ``project_id``'s events belong in now: ``"fast"`` or ``"slow"``.

        Forced lanes win. Otherwise a demoted project stays slow until its backoff has ended and its
        windowed cost is under budget; an undemoted project over budget is demoted now (for
        ``backoff_seconds``). An untracked project is fast. Marks the project as recently seen.
        Raises ValueError only for a ``now`` that is not finite.
        """
        at = self._now(now)
        forced = self._forced.get(project_id)
        if forced is not None:
            return forced
        usage = self._find(project_id, touch=True)
        return FAST if usage is None else self._decide(usage, at)

    def should_switch(
        self, project_id: int, current_lane: Lane, switches_so_far: int, now: float | None = None
    ) -> Lane:
        """The lane an event of ``project_id`` taken from ``current_lane``'s queue should go to.

        Returns ``current_lane`` (process it here) once the event has moved ``max_lane_switches``
        times, else :meth:`lane_of`. The caller counts a switch whenever the answer differs from
        ``current_lane``. Raises ValueError for an unknown lane or a negative ``switches_so_far``.
        """
        if current_lane not in _LANES:
            raise ValueError(f"current_lane must be 'fast' or 'slow', got {current_lane!r}")
        if not isinstance(switches_so_far, int) or isinstance(switches_so_far, bool) or switches_so_far < 0:
            raise ValueError(f"switches_so_far must be an integer >= 0, got {switches_so_far!r}")
        if switches_so_far >= self.config.max_lane_switches:
            return current_lane
        return self.lane_of(project_id, now)

    def force(self, project_id: int, lane: Lane | None) -> None:
        """Pin ``project_id`` to ``lane`` (operators), or with None return it to automatic choice.

        A forced project keeps being charged, so its costs are known when the pin is removed; its
        demotion state is kept as it was. Raises ValueError for a lane other than fast/slow/None.
        """
        if lane is not None and lane not in _LANES:
            raise ValueError(f"lane must be 'fast', 'slow' or None, got {lane!r}")
        if lane is not None:
            self._forced[project_id] = lane
            usage = self._usage.pop(project_id, None)
            if usage is not None:
                self._pinned[project_id] = usage
            return
        if self._forced.pop(project_id, None) is None:
            return
        usage = self._pinned.pop(project_id, None)
        if usage is not None:
            self._usage[project_id] = usage  # as the most recently seen
            self._evict()

    def windowed_cost(self, project_id: int, now: float | None = None) -> float:
        """The cost (s²) charged to ``project_id`` within the window ending now; 0.0 if untracked.

        Does not mark the project as seen. Raises ValueError only for a ``now`` that is not finite.
        """
        index = self._index(self._now(now))
        usage = self._find(project_id, touch=False)
        return 0.0 if usage is None else usage.total(index)

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """One dict per tracked or forced project, ordered by project id, for metrics and status.

        Keys: ``project_id``, ``windowed_cost`` (s²), ``used_budget`` (s²/s over the window),
        ``lane``, ``demoted_until`` (end of the backoff on this selector's clock, or None) and
        ``forced`` (``"fast"``, ``"slow"`` or None). Lanes are decided as :meth:`lane_of` would
        (a demotion due now is recorded) but no project is marked as seen. Raises ValueError only
        for a ``now`` that is not finite.
        """
        at = self._now(now)
        index = self._index(at)
        rows = []
        for project_id in sorted({*self._usage, *self._pinned, *self._forced}):
            usage = self._find(project_id, touch=False)
            forced = self._forced.get(project_id)
            cost = 0.0 if usage is None else usage.total(index)
            if forced is not None:
                lane = forced
            else:
                lane = FAST if usage is None else self._decide(usage, at)
            rows.append(
                {
                    "project_id": project_id,
                    "windowed_cost": cost,
                    "used_budget": cost / self.config.window_seconds,
                    "lane": lane,
                    "demoted_until": None if usage is None else usage.demoted_until,
                    "forced": forced,
                }
            )
        return rows

    def _now(self, now: float | None) -> float:
        at = self._clock() if now is None else now
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise ValueError(f"now must be a finite number, got {at!r}")
        if at > self._latest:
            self._latest = float(at)
        return self._latest

    def _index(self, at: float) -> int:
        return math.floor(at / self.config.bucket_seconds)

    def _find(self, project_id: int, *, touch: bool) -> _Usage | None:
        usage = self._pinned.get(project_id)
        if usage is not None:
            return usage
        usage = self._usage.get(project_id)
        if usage is not None and touch:
            self._usage.move_to_end(project_id)
        return usage

    def _track(self, project_id: int, index: int) -> _Usage:
        usage = _Usage(self.config.buckets, index)
        if project_id in self._forced:
            self._pinned[project_id] = usage
        else:
            self._usage[project_id] = usage
            self._evict()
        return usage

    def _evict(self) -> None:
        while len(self._usage) > self.config.max_projects:
            self._usage.popitem(last=False)

    def _decide(self, usage: _Usage, at: float) -> Lane:
        config = self.config
        over = usage.total(self._index(at)) / config.window_seconds > config.budget
        if usage.demoted_until is not None:
            if at < usage.demoted_until or over:
                return SLOW
            usage.demoted_until = None
            return FAST
        if over:
            usage.demoted_until = at + config.backoff_seconds
            return SLOW
        return FAST


def lane_config_of(section: Any) -> LaneConfig:
    """Build a LaneConfig from the ``[lanes]`` config section. Raises ValueError naming a bad field."""
    return LaneConfig(
        bucket_seconds=section.bucket_seconds, window_seconds=section.window_seconds, budget=section.budget,
        backoff_seconds=section.backoff_seconds, max_projects=section.max_projects,
        max_lane_switches=section.max_lane_switches,
    )


def make_lane_selector(config: Any) -> LaneSelector:
    """Build a selector from the ``[lanes]`` config section, with its forced projects applied.

    Raises ValueError for invalid values (config loading has already checked them).
    """
    selector = LaneSelector(lane_config_of(config))
    for project_id in config.force_slow:
        selector.force(project_id, SLOW)
    for project_id in config.force_fast:
        selector.force(project_id, FAST)
    return selector
