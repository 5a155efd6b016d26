"""LaneSelector: quadratic cost, sliding window, sticky demotion, forcing, switch cap, bounded memory.

Time is always injected (``now=`` or a fake clock): nothing here sleeps or reads the wall clock.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.lanes import FAST, SLOW, LaneConfig, LaneSelector


def test_defaults():
    config = LaneConfig()
    assert (config.bucket_seconds, config.window_seconds, config.budget) == (10.0, 300.0, 5.0)
    assert (config.backoff_seconds, config.max_lane_switches) == (600.0, 1)
    assert config.buckets == 30


@pytest.mark.parametrize(
    "field, value",
    [
        ("bucket_seconds", 0),
        ("bucket_seconds", True),
        ("window_seconds", -300),
        ("budget", 0),
        ("budget", math.nan),
        ("backoff_seconds", -1),
        ("backoff_seconds", math.inf),
        ("max_projects", 0),
        ("max_projects", 1.5),
        ("max_lane_switches", -1),
    ],
)
def test_config_rejects_a_bad_field_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        LaneConfig(**{field: value})


@pytest.mark.parametrize("window", [5.0, 25.0, 10.0 * 3601])
def test_window_must_be_a_whole_number_of_buckets(window):
    with pytest.raises(ValueError, match="window_seconds"):
        LaneConfig(bucket_seconds=10.0, window_seconds=window)


def test_a_project_of_slow_events_is_demoted_and_a_fast_one_never_is():
    lanes = LaneSelector(LaneConfig())
    for second in range(0, 300, 10):
        lanes.record(1, 8.0, now=second)  # an 8 s event every 10 s: 6.4 s²/s > 5
        for tenth in range(50):
            lanes.record(2, 0.1, now=second + tenth / 10)  # 5 events/s of 0.1 s: 0.05 s²/s
        assert lanes.lane_of(2, now=second + 9) == FAST
    assert lanes.lane_of(1, now=299) == SLOW
    assert lanes.lane_of(2, now=299) == FAST
    # Project 2 spent ~1.5x project 1's seconds, yet its cost is ~100 times lower.
    assert lanes.windowed_cost(2, now=299) < lanes.windowed_cost(1, now=299) / 100


def test_cost_is_quadratic_one_long_event_outweighs_many_short_ones():
    lanes = LaneSelector(LaneConfig(budget=0.1))  # 30 s² per 300 s window
    lanes.record(1, 10.0, now=0)
    for _ in range(10):
        lanes.record(2, 1.0, now=0)
    assert lanes.windowed_cost(1, now=0) == 100.0
    assert lanes.windowed_cost(2, now=0) == 10.0
    # The same 10 s of work: one event demotes its project, ten events do not.
    assert lanes.lane_of(1, now=1) == SLOW
    assert lanes.lane_of(2, now=1) == FAST


def test_old_buckets_leave_the_window_as_the_clock_advances():
    lanes = LaneSelector(LaneConfig(bucket_seconds=10, window_seconds=300))
    lanes.record(1, 10.0, now=5)  # bucket 0
    lanes.record(1, 2.0, now=155)  # bucket 15
    assert lanes.windowed_cost(1, now=299.9) == 104.0  # buckets 0..29
    assert lanes.windowed_cost(1, now=300) == 4.0  # bucket 0 left
    assert lanes.windowed_cost(1, now=449.9) == 4.0
    assert lanes.windowed_cost(1, now=450) == 0.0
    lanes.record(1, 3.0, now=460)
    assert lanes.windowed_cost(1, now=10_000) == 0.0  # a jump far past the whole ring


def test_backoff_keeps_a_project_slow_for_the_minimum_period_then_it_returns():
    lanes = LaneSelector(LaneConfig(budget=1.0, backoff_seconds=600))
    lanes.record(1, 40.0, now=0)  # 1600 s² / 300 s ≈ 5.3 > 1
    assert lanes.lane_of(1, now=0) == SLOW
    assert lanes.snapshot(now=0)[0]["demoted_until"] == 600
    assert lanes.windowed_cost(1, now=300) == 0.0
    assert lanes.lane_of(1, now=300) == SLOW  # under budget, but the backoff holds
    assert lanes.lane_of(1, now=599.9) == SLOW
    assert lanes.lane_of(1, now=600) == FAST
    assert lanes.snapshot(now=600)[0]["demoted_until"] is None


def test_a_project_still_over_budget_stays_slow_past_its_backoff():
    lanes = LaneSelector(LaneConfig(budget=1.0, backoff_seconds=600))
    lanes.record(1, 40.0, now=0)
    for second in range(0, 900, 10):
        lanes.record(1, 10.0, now=second)  # then 10 s² per second, over and over
        assert lanes.lane_of(1, now=second) == SLOW  # demoted at 0; backoff ends at 600
    assert lanes.snapshot(now=890)[0]["demoted_until"] == 600  # past it, still over budget
    assert lanes.lane_of(1, now=1190) == FAST  # the window emptied
    lanes.record(1, 40.0, now=1200)
    assert lanes.lane_of(1, now=1200) == SLOW  # coming back is not sticky: demoted again at once


def test_forcing_overrides_both_ways_and_none_restores_automatic_choice():
    lanes = LaneSelector(LaneConfig(budget=1.0))
    lanes.record(1, 40.0, now=0)
    lanes.record(2, 0.1, now=0)
    lanes.force(1, FAST)
    lanes.force(2, SLOW)
    assert lanes.lane_of(1, now=1) == FAST
    assert lanes.lane_of(2, now=1) == SLOW
    lanes.force(3, SLOW)  # never seen: forcing still applies
    assert lanes.lane_of(3, now=1) == SLOW
    lanes.force(1, None)
    lanes.force(2, None)
    assert lanes.lane_of(1, now=2) == SLOW
    assert lanes.lane_of(2, now=2) == FAST
    with pytest.raises(ValueError, match="lane"):
        lanes.force(1, "medium")  # type: ignore[arg-type]


def test_a_forced_project_keeps_being_charged():
    lanes = LaneSelector(LaneConfig(budget=1.0))
    lanes.force(1, FAST)
    lanes.record(1, 40.0, now=0)
    assert lanes.windowed_cost(1, now=0) == 1600.0
    lanes.force(1, None)
    assert lanes.lane_of(1, now=1) == SLOW


def test_should_switch_moves_an_event_at_most_max_lane_switches_times():
    lanes = LaneSelector(LaneConfig(budget=1.0, max_lane_switches=1))
    lanes.record(1, 40.0, now=0)
    assert lanes.should_switch(1, FAST, 0, now=1) == SLOW  # queued before the demotion: moves
    assert lanes.should_switch(1, FAST, 1, now=1) == FAST  # already moved once: stays
    assert lanes.should_switch(2, SLOW, 0, now=1) == FAST  # back to fast when not demoted
    assert lanes.should_switch(2, SLOW, 1, now=1) == SLOW


def test_no_switches_at_all_with_max_lane_switches_zero():
    lanes = LaneSelector(LaneConfig(budget=1.0, max_lane_switches=0))
    lanes.record(1, 40.0, now=0)
    assert lanes.should_switch(1, FAST, 0, now=1) == FAST
    assert lanes.lane_of(1, now=1) == SLOW


@pytest.mark.parametrize("lane, switches", [("medium", 0), (FAST, -1), (FAST, 0.5)])
def test_should_switch_rejects_bad_arguments(lane, switches):
    with pytest.raises(ValueError):
        LaneSelector().should_switch(1, lane, switches, now=0)


def test_at_the_limit_the_least_recently_seen_project_is_evicted():
    lanes = LaneSelector(LaneConfig(max_projects=3))
    for project in (1, 2, 3):
        lanes.record(project, 1.0, now=0)
    lanes.lane_of(1, now=1)  # seen again: 2 is now the least recent
    lanes.windowed_cost(2, now=1)  # reading metrics does not count as seeing it
    lanes.record(4, 1.0, now=2)
    assert [p for p in (1, 2, 3, 4) if p in lanes] == [1, 3, 4]
    assert len(lanes) == 3
    assert lanes.windowed_cost(2, now=2) == 0.0


def test_forced_projects_are_never_evicted():
    lanes = LaneSelector(LaneConfig(max_projects=2))
    lanes.record(1, 5.0, now=0)
    lanes.force(1, SLOW)
    for project in range(2, 10):
        lanes.record(project, 1.0, now=project)
    assert 1 in lanes and lanes.windowed_cost(1, now=10) == 25.0
    assert len(lanes) == 3  # two unforced + the forced one
    lanes.force(1, None)  # back among the unforced, as the most recently seen
    assert len(lanes) == 2 and 1 in lanes and 9 in lanes


def test_a_project_forced_before_its_first_event_is_never_evicted_either():
    lanes = LaneSelector(LaneConfig(max_projects=2))
    lanes.force(1, FAST)
    lanes.record(1, 5.0, now=0)
    for project in range(2, 10):
        lanes.record(project, 1.0, now=project)
    assert 1 in lanes and len(lanes) == 3


def test_an_unknown_project_is_fast_and_asking_does_not_track_it():
    lanes = LaneSelector()
    assert lanes.lane_of(42, now=0) == FAST
    assert 42 not in lanes and len(lanes) == 0
    assert lanes.snapshot(now=0) == []


def test_now_defaults_to_the_injected_clock():
    clock = [0.0]
    lanes = LaneSelector(LaneConfig(budget=1.0, backoff_seconds=600), clock=lambda: clock[0])
    lanes.record(1, 40.0)
    assert lanes.lane_of(1) == SLOW
    clock[0] = 600.0
    assert lanes.lane_of(1) == FAST


def test_time_never_goes_backwards():
    lanes = LaneSelector(LaneConfig())
    lanes.record(1, 2.0, now=400)
    lanes.record(1, 3.0, now=0)  # earlier than seen: counted at 400, not lost in a stale bucket
    assert lanes.windowed_cost(1, now=0) == 13.0
    assert lanes.windowed_cost(1, now=700) == 0.0


@pytest.mark.parametrize("duration", [-0.1, math.nan, math.inf, True])
def test_record_rejects_a_bad_duration(duration):
    with pytest.raises(ValueError, match="duration_seconds"):
        LaneSelector().record(1, duration, now=0)


def test_a_now_that_is_not_finite_is_refused():
    with pytest.raises(ValueError, match="now"):
        LaneSelector().lane_of(1, now=math.nan)


def test_snapshot_reports_cost_lane_demotion_and_forcing():
    lanes = LaneSelector(LaneConfig(budget=1.0, backoff_seconds=600))
    lanes.record(1, 40.0, now=0)
    lanes.record(2, 1.0, now=0)
    lanes.force(3, FAST)
    assert lanes.snapshot(now=30) == [
        {"project_id": 1, "windowed_cost": 1600.0, "used_budget": 1600.0 / 300, "lane": SLOW,
         "demoted_until": 630.0, "forced": None},
        {"project_id": 2, "windowed_cost": 1.0, "used_budget": 1.0 / 300, "lane": FAST,
         "demoted_until": None, "forced": None},
        {"project_id": 3, "windowed_cost": 0.0, "used_budget": 0.0, "lane": FAST,
         "demoted_until": None, "forced": FAST},
    ]


# --- property: random traffic against a brute-force reference --------------------------------

_CONFIG = LaneConfig(bucket_seconds=5, window_seconds=20, budget=1.0, backoff_seconds=30, max_projects=3)

_steps = st.lists(
    st.tuples(
        st.sampled_from(["record", "record", "lane", "switch", "force"]),
        st.integers(0, 7),  # project
        st.floats(0, 30, allow_nan=False),  # duration
        # clock advance before the step: often within a bucket, sometimes past the whole window
        st.one_of(st.floats(0, 6), st.floats(0, 60)),
        st.sampled_from([FAST, SLOW, None]),  # forced lane / current lane
    ),
    max_size=150,
)


def _reference_cost(events: list[tuple[float, float]], now: float) -> float:
    """Sum of the costs recorded in the buckets (now's and the ones before) the window spans."""
    newest = math.floor(now / _CONFIG.bucket_seconds)
    oldest = newest - _CONFIG.buckets + 1
    return math.fsum(cost for at, cost in events if math.floor(at / _CONFIG.bucket_seconds) >= oldest)


@settings(deadline=None)  # no wall-clock threshold in tests
@given(_steps)
def test_random_traffic_never_raises_stays_bounded_and_matches_a_brute_force_window(steps):
    lanes = LaneSelector(_CONFIG)
    now = 0.0
    recorded: dict[int, list[tuple[float, float]]] = {}  # project -> (time, cost) since tracked
    forced: dict[int, str] = {}
    for kind, project, duration, advance, lane in steps:
        now += advance
        if kind == "record":
            lanes.record(project, duration, now=now)
            recorded.setdefault(project, []).append((now, duration * duration))
        elif kind == "lane":
            assert lanes.lane_of(project, now=now) in (FAST, SLOW)
        elif kind == "switch":
            assert lanes.should_switch(project, lane or FAST, 0, now=now) == lanes.lane_of(project, now=now)
        else:
            lanes.force(project, lane)
            if lane is None:
                forced.pop(project, None)
            else:
                forced[project] = lane
        assert all(p in lanes for p in forced if p in recorded)  # forced: never evicted
        for gone in [p for p in recorded if p not in lanes]:
            del recorded[gone]  # evicted: its history is forgotten, as documented
        assert len(lanes) <= _CONFIG.max_projects + len(forced)
        for project, events in recorded.items():
            expected = _reference_cost(events, now)
            assert math.isclose(lanes.windowed_cost(project, now=now), expected, rel_tol=1e-9, abs_tol=1e-9)
        for project, lane_forced in forced.items():
            assert lanes.lane_of(project, now=now) == lane_forced
        for row in lanes.snapshot(now=now):
            assert row["lane"] in (FAST, SLOW)
