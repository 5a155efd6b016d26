"""Outcome counting: per-minute aggregation, its bound, and restore after a failed write."""

from __future__ import annotations

from minisentry.outcomes import Outcome, OutcomeAggregator, category_of_item


def test_counts_aggregate_per_minute_and_key():
    agg = OutcomeAggregator()
    agg.record(1, Outcome.ACCEPTED, "error", timestamp=120.5)
    agg.record(1, Outcome.ACCEPTED, "error", quantity=2, timestamp=179.0)
    agg.record(1, Outcome.ACCEPTED, "error", timestamp=180.0)
    agg.record(1, Outcome.INVALID, "error", "too_large", timestamp=130.0)
    rows = sorted(agg.take(), key=lambda r: (r.timestamp, r.outcome))
    assert [(r.timestamp, r.outcome, r.reason, r.quantity) for r in rows] == [
        (120, Outcome.ACCEPTED, "", 3), (120, Outcome.INVALID, "too_large", 1), (180, Outcome.ACCEPTED, "", 1)]
    assert agg.take() == []


def test_at_the_key_limit_new_keys_are_counted_as_dropped_existing_keys_still_count():
    agg = OutcomeAggregator(max_keys=2)
    agg.record(1, Outcome.FILTERED, "error", "a", timestamp=0)
    agg.record(1, Outcome.FILTERED, "error", "b", timestamp=0)
    agg.record(1, Outcome.FILTERED, "error", "c", quantity=5, timestamp=0)
    agg.record(1, Outcome.FILTERED, "error", "a", timestamp=0)
    assert len(agg) == 2 and agg.dropped == 5
    assert {(r.reason, r.quantity) for r in agg.take()} == {("a", 2), ("b", 1)}
    agg.record(1, Outcome.FILTERED, "error", "c", timestamp=0)
    assert [r.reason for r in agg.take()] == ["c"]


def test_restore_puts_rows_back():
    agg = OutcomeAggregator()
    agg.record(2, Outcome.RATE_LIMITED, "transaction", "pipeline_full", quantity=4, timestamp=60)
    rows = agg.take()
    agg.record(2, Outcome.RATE_LIMITED, "transaction", "pipeline_full", timestamp=61)
    agg.restore(rows)
    (row,) = agg.take()
    assert row.quantity == 5 and row.category == "transaction"


def test_item_categories():
    assert category_of_item("event") == "error"
    assert category_of_item("transaction") == "transaction"
    assert category_of_item("attachment") == "attachment"
    assert category_of_item("something_new") == "default"
