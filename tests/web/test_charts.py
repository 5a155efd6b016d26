"""Pure parts of the UI's charts and operations pages: SVG, period/query parsing, tag breakdown, status."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, strategies as st

from minisentry.web.charts import Bar, bar_chart
from minisentry.web.issue_insights import MAX_TAG_KEYS, TOP_VALUES, percent, tag_breakdown
from minisentry.web.ops_pages import status_body
from minisentry.web.periods import PERIODS, bucket_starts, parse_period, parse_query

SVG = "{http://www.w3.org/2000/svg}"
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


@given(st.lists(st.tuples(_TEXT, st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3), _TEXT),
                max_size=40))
def test_any_bars_make_well_formed_svg_with_escaped_text(raw):
    bars = [Bar(label, tuple(values), title) for label, values, title in raw]
    svg = ET.fromstring(bar_chart(bars, series=("a", "b", "c")))
    segments = [rect for rect in svg.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert len(segments) == sum(1 for bar in bars for value in bar.values if 0 < value < float("inf"))
    for rect in segments:
        assert float(rect.get("height")) >= 0 and float(rect.get("y")) >= 0


def test_one_series_bars_carry_their_title_and_scale_to_the_tallest():
    svg = ET.fromstring(bar_chart([Bar("a", (3,), "three <events>"), Bar("b", (0,), "none"),
                                   Bar("c", (6,), "six")]))
    rects = [r for r in svg.iter(f"{SVG}rect")]
    assert [r.find(f"{SVG}title").text for r in rects] == ["three <events>", "six"]
    assert float(rects[1].get("height")) == 2 * float(rects[0].get("height"))
    assert "6" in [t.text for t in svg.iter(f"{SVG}text")]  # the y axis maximum


@given(st.text(max_size=200))
def test_period_and_query_parsing_never_raise(raw):
    assert parse_period(raw, ("24h", "30d"), "24h").name in ("24h", "30d")
    assert parse_period(raw, ("24h", "30d"), "24h").name == (raw if raw in ("24h", "30d") else "24h")
    params = parse_query(raw)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    assert len(params) <= 20


@given(st.sampled_from(tuple(PERIODS)), st.floats(0, 4e9))
def test_buckets_are_aligned_and_end_with_now(name, now):
    period = PERIODS[name]
    starts = bucket_starts(period, now)
    assert len(starts) == period.buckets
    assert all(start % period.interval == 0 for start in starts)
    assert starts[-1] <= now < starts[-1] + period.interval
    assert all(b - a == period.interval for a, b in zip(starts, starts[1:]))


@given(st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5), st.integers(1, 50)), max_size=200))
def test_tag_breakdown_is_bounded(counts):
    total = 50
    keys = tag_breakdown(total, counts)
    assert len(keys) <= MAX_TAG_KEYS
    for entry in keys:
        assert len(entry["values"]) <= TOP_VALUES
        assert [c for _, c in entry["values"]] == sorted((c for _, c in entry["values"]), reverse=True)


def test_tag_breakdown_puts_sentrys_keys_first_and_percentages_read_well():
    keys = tag_breakdown(4, [("zeta", "x", 4), ("release", "1.0", 3), ("release", "2.0", 1), ("level", "error", 4)])
    assert [k["key"] for k in keys] == ["level", "release", "zeta"]
    assert keys[1]["values"] == [("1.0", 3), ("2.0", 1)]
    assert (percent(2, 3), percent(3, 3), percent(1, 1000), percent(1, 0)) == ("66.7%", "100%", "0.1%", "-")


def test_status_page_says_when_this_process_runs_no_stages():
    assert "does not run the pipeline" in status_body(None)
    snapshot = {"roles": ["relay"], "stages": [], "ready": True, "reasons": [], "channels": [], "lanes": [],
                "killswitches": [], "upstream": None, "spool": None}
    body = status_body(snapshot)
    assert "runs only the role(s) relay" in body and "other processes" in body
