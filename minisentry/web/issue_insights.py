"""The issue page's "events over time" chart and tag breakdown.

:func:`tag_breakdown` turns the store's ``(key, value, count)`` triples (over the issue's newest
events) into at most :data:`MAX_TAG_KEYS` keys with their :data:`TOP_VALUES` most common values;
:func:`insights_body` draws the chart for ``?period=24h|30d`` and the breakdown. Pure functions:
nothing blocks or raises; every value is escaped.
"""

from __future__ import annotations

from typing import Any

from .charts import Bar, bar_chart
from .html import Markup, join, render
from .periods import Period, bucket_label, bucket_starts, bucket_title

__all__ = ["ISSUE_PERIODS", "MAX_TAG_EVENTS", "MAX_TAG_KEYS", "TOP_VALUES", "tag_breakdown", "insights_body",
           "percent"]

#: Periods offered by the issue page's chart (the first is the default).
ISSUE_PERIODS = ("24h", "30d")
#: The breakdown counts the tags of at most this many of the issue's newest events.
MAX_TAG_EVENTS = 1000
#: At most this many tag keys are shown, and this many values of each.
MAX_TAG_KEYS = 12
TOP_VALUES = 5
# Keys every event has come first, in Sentry's order; the others follow by how many events carry them.
_FIRST_KEYS = ("level", "release", "environment", "browser", "os", "device", "runtime", "server_name")


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage for people: ``100%``, ``66.7%``, ``0.1%`` (``-`` of nothing)."""
    if whole <= 0:
        return "-"
    value = 100 * part / whole
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


def tag_breakdown(total: int, counts: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Keys (``{"key", "events", "values": [(value, count), ...]}``), most telling first, bounded."""
    by_key: dict[str, dict[str, int]] = {}
    for key, value, count in counts:
        by_key.setdefault(key, {})[value] = by_key.get(key, {}).get(value, 0) + count
    rank = {key: index for index, key in enumerate(_FIRST_KEYS)}

    def order(key: str) -> tuple[int, int, str]:
        return rank.get(key, len(rank)), -sum(by_key[key].values()), key

    result = []
    for key in sorted(by_key, key=order)[:MAX_TAG_KEYS]:
        values = sorted(by_key[key].items(), key=lambda item: (-item[1], item[0]))
        result.append({"key": key, "events": min(sum(by_key[key].values()), total) if total else 0,
                       "values": values[:TOP_VALUES], "others": len(values) - min(len(values), TOP_VALUES)})
    return result


def _share_bar(part: int, whole: int) -> Markup:
    width = 0 if whole <= 0 else round(100 * min(part, whole) / whole)
    return render('<svg width="100" height="8" aria-hidden="true"><rect width="100" height="8" fill="#eee"/>'
                  '<rect width="$w" height="8" fill="#6c5fc7"/></svg>', w=width)


def _breakdown(total: int, keys: list[dict[str, Any]]) -> Markup:
    if not keys:
        return Markup('<p class="muted">No tags.</p>')
    sections = []
    for entry in keys:
        rows = [render('<tr><td><code>$value</code></td><td class="num">$count</td><td class="num">$pct</td>'
                       '<td>$bar</td></tr>', value=value, count=count, pct=percent(count, total),
                       bar=_share_bar(count, total)) for value, count in entry["values"]]
        more = render('<tr><td class="muted" colspan="4">and $n more</td></tr>', n=entry["others"]) \
            if entry["others"] else Markup("")
        sections.append(render('<div class="tag-key"><h3>$key</h3><table class="tags">$rows$more</table></div>',
                               key=entry["key"], rows=join(rows), more=more))
    return render('<div class="tag-grid">$sections</div>', sections=join(sections))


def insights_body(issue_id: int, period: Period, series: dict[int, int], now: float, total: int,
                  counts: list[tuple[str, str, int]]) -> Markup:
    """The chart of the issue's events per bucket of ``period`` and the tag breakdown of ``total`` events."""
    starts = bucket_starts(period, now)
    bars = [Bar(bucket_label(start, period), (series.get(start, 0),),
                f"{bucket_title(start, period)}: {series.get(start, 0)} events") for start in starts]
    chart = bar_chart(bars, label=f"events of issue {issue_id} over {period.name}")
    links = join((render('<a href="?period=$p"$cur>$p</a>', p=name,
                         cur=Markup(' aria-current="page" class="current"') if name == period.name else Markup(""))
                  for name in ISSUE_PERIODS), " · ")
    in_period = sum(series.get(start, 0) for start in starts)
    return render('<section class="insights"><h2>Events over time</h2><nav class="periods">$links</nav>'
                  '<p class="muted">$n events in the last $period</p>$chart'
                  '<h2 id="tags">Tags</h2><p class="muted">Over the $total newest events.</p>$breakdown</section>',
                  links=links, n=in_period, period=period.name, chart=chart, total=total,
                  breakdown=_breakdown(total, tag_breakdown(total, counts)))
