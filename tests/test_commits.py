"""CommitTracker: out-of-order completion, in-order commit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minisentry.commits import CommitTracker
from minisentry.errors import PipelineError


def tracker_with(*positions: int, limit: int = 100) -> CommitTracker:
    tracker = CommitTracker(limit)
    for position in positions:
        tracker.track(position)
    return tracker


def test_nothing_committed_before_the_first_done():
    tracker = tracker_with(0, 1)
    assert tracker.committed is None
    assert len(tracker) == 2


def test_in_order_completion_commits_each_position():
    tracker = tracker_with(0, 1, 2)
    assert [tracker.done(p) for p in (0, 1, 2)] == [0, 1, 2]
    assert tracker.committed == 2
    assert len(tracker) == 0


def test_out_of_order_completion_commits_only_the_contiguous_prefix():
    tracker = tracker_with(10, 11, 12, 13)
    assert tracker.done(12) is None
    assert tracker.done(11) is None
    assert tracker.committed is None
    assert tracker.done(10) == 12
    assert tracker.committed == 12
    assert len(tracker) == 1
    assert tracker.done(13) == 13


def test_gaps_between_positions_are_fine():
    tracker = tracker_with(3, 7, 20)
    assert tracker.done(7) is None
    assert tracker.done(3) == 7
    assert tracker.done(20) == 20


def test_committed_stays_when_the_head_is_pending():
    tracker = tracker_with(0, 1, 2)
    tracker.done(0)
    assert tracker.done(2) is None
    assert tracker.committed == 0


@pytest.mark.parametrize("acks", [(0, 0), (1, 1), (1, 0, 1)])
def test_double_ack_raises(acks):
    tracker = tracker_with(0, 1, 2)
    *first, again = acks
    for position in first:
        tracker.done(position)
    with pytest.raises(PipelineError, match="not pending"):
        tracker.done(again)


@pytest.mark.parametrize("position", [-1, 1, 5, 99])
def test_ack_of_a_position_never_tracked_raises(position):
    tracker = tracker_with(0, 2, 4)
    with pytest.raises(PipelineError, match="not pending"):
        tracker.done(position)


def test_early_ack_of_a_future_position_cannot_commit_it_later():
    tracker = tracker_with(0)
    with pytest.raises(PipelineError):
        tracker.done(1)
    tracker.track(1)
    assert tracker.done(0) == 0  # 1 was never really done: it must not be committed
    assert tracker.committed == 0
    assert tracker.done(1) == 1


def test_ack_on_an_empty_tracker_raises():
    with pytest.raises(PipelineError):
        CommitTracker(10).done(0)


@pytest.mark.parametrize("second", [5, 4])
def test_positions_must_increase(second):
    tracker = tracker_with(5)
    with pytest.raises(PipelineError, match="increase"):
        tracker.track(second)


def test_positions_must_increase_even_after_commit():
    tracker = tracker_with(5)
    tracker.done(5)
    with pytest.raises(PipelineError, match="increase"):
        tracker.track(5)


def test_limit_bounds_pending_positions():
    tracker = tracker_with(0, 1, 2, limit=3)
    with pytest.raises(PipelineError, match="3"):
        tracker.track(3)
    tracker.done(1)  # done but not committed: still pending
    with pytest.raises(PipelineError):
        tracker.track(3)
    tracker.done(0)  # 0 and 1 are released
    tracker.track(3)
    tracker.track(4)
    with pytest.raises(PipelineError):
        tracker.track(5)


@given(st.data())
def test_committed_is_the_longest_done_prefix(data):
    positions = sorted(data.draw(st.sets(st.integers(0, 10_000), min_size=1, max_size=60)))
    order = data.draw(st.permutations(positions))
    tracker = tracker_with(*positions, limit=len(positions))
    done: set[int] = set()
    for position in order:
        before = tracker.committed
        result = tracker.done(position)
        done.add(position)
        prefix = list(itertools.takewhile(done.__contains__, positions))  # all done up to here
        expected = max(prefix) if prefix else None
        assert tracker.committed == expected
        assert result == (expected if expected != before else None)
        assert len(tracker) == len(positions) - len(prefix)
    assert tracker.committed == positions[-1]
