"""Page bodies of the operations pages: stats (outcomes), releases (health), monitors and pipeline status.

Pure functions from store rows (and the pipeline snapshot of ``pipeline_status``) to escaped
:class:`~minisentry.web.html.Markup`; ``ops_routes`` fetches the data. Nothing blocks or raises.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..outcomes import Outcome
from .charts import Bar, bar_chart, legend
from .html import Markup, join, render
from .periods import Period, bucket_label, bucket_starts, bucket_title
from .pages import when

__all__ = ["OUTCOME_NAMES", "filter_form", "stats_body", "releases_body", "monitors_body", "status_body",
           "crash_free"]

#: Outcome names in Sentry's numbering order: the stacking order of the stats charts.
OUTCOME_NAMES = tuple(outcome.name.lower() for outcome in Outcome)
_CHECK_IN_STATUSES = ("ok", "error", "missed", "timeout", "in_progress", "active")


def crash_free(rate: float | None) -> str:
    """A crash-free rate (0..1) as ``66.67%``, or ``-`` without sessions."""
    return "-" if rate is None else f"{rate * 100:.2f}%"


def filter_form(projects: list[str], project: str, periods: tuple[str, ...], period: Period) -> Markup:
    """The project picker (GET form) and links to the other periods, keeping the chosen project."""
    options = [render('<option value=""$sel>all projects</option>', sel=Markup("" if project else " selected"))]
    options += [render('<option value="$p"$sel>$p</option>', p=slug,
                       sel=Markup(" selected" if slug == project else "")) for slug in projects]
    links = []
    for name in periods:
        query = urlencode({"period": name, **({"project": project} if project else {})})
        links.append(render('<a href="?$q"$cur>$name</a>', q=query, name=name,
                            cur=Markup(' aria-current="page" class="current"' if name == period.name else "")))
    return render('<form method="get" class="filters"><select name="project">$options</select>'
                  '<input type="hidden" name="period" value="$period"> <button type="submit">Show</button></form>'
                  '<nav class="periods">$links</nav>', options=join(options), period=period.name,
                  links=join(links, " · "))


def stats_body(form: Markup, period: Period, rows: list[dict[str, Any]], now: float) -> Markup:
    """One stacked chart per data category (bars: outcomes per bucket) and a totals table."""
    if not rows:
        return render('$form<p class="muted">No outcomes in the last $p.</p>', form=form, p=period.name)
    cells: dict[str, dict[int, dict[str, int]]] = {}
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        category, outcome, quantity = str(row["category"]), str(row["outcome"]), int(row["quantity"])
        cells.setdefault(category, {}).setdefault(int(row["bucket"]), {})
        cells[category][int(row["bucket"])][outcome] = cells[category][int(row["bucket"])].get(outcome, 0) + quantity
        totals.setdefault(category, {})[outcome] = totals.get(category, {}).get(outcome, 0) + quantity
    starts = bucket_starts(period, now)
    charts = []
    for category in sorted(cells):
        bars = [Bar(bucket_label(start, period), tuple(cells[category].get(start, {}).get(name, 0)
                                                       for name in OUTCOME_NAMES),
                    f"{category} {bucket_title(start, period)}") for start in starts]
        charts.append(render('<section class="chart-block" id="category-$c"><h2>$c</h2>$chart</section>', c=category,
                             chart=bar_chart(bars, series=OUTCOME_NAMES, label=f"{category} outcomes")))
    head = join(render("<th>$n</th>", n=name) for name in OUTCOME_NAMES)
    table_rows = [render("<tr><th>$c</th>$cells</tr>", c=category, cells=join(
        render('<td class="num">$v</td>', v=totals[category].get(name, 0)) for name in OUTCOME_NAMES))
        for category in sorted(totals)]
    return render('$form$legend$charts<h2>Totals over $p</h2><table class="totals"><tr><th>category</th>$head</tr>'
                  '$rows</table>', form=form, legend=legend(OUTCOME_NAMES), charts=join(charts), p=period.name,
                  head=head, rows=join(table_rows))


def releases_body(form: Markup, period: Period, rows: list[dict[str, Any]]) -> Markup:
    """Crash-free sessions per release and environment: a chart of the rates and the session counts."""
    if not rows:
        return render('$form<p class="muted">No sessions in the last $p.</p>', form=form, p=period.name)
    bars = [Bar(str(row["release"]), (round((row["crash_free_rate"] or 0) * 100, 2),),
                f"{row['release']} ({row['environment']}): {crash_free(row['crash_free_rate'])} crash-free "
                f"of {row['started']} sessions") for row in rows]
    table = [render('<tr><td>$project</td><td><code>$release</code></td><td>$env</td><td class="num">$started</td>'
                    '<td class="num">$errored</td><td class="num">$crashed</td><td class="num">$abnormal</td>'
                    '<td class="num crash-free">$rate</td><td>$last</td></tr>',
                    project=row["project"], release=row["release"], env=row["environment"], started=row["started"],
                    errored=row["errored"], crashed=row["crashed"], abnormal=row["abnormal"],
                    rate=crash_free(row["crash_free_rate"]), last=when(row["last_seen"])) for row in rows]
    return render('$form<h2>Crash-free sessions (%)</h2>$chart<table class="releases"><tr><th>Project</th>'
                  '<th>Release</th><th>Environment</th><th>Sessions</th><th>Errored</th><th>Crashed</th>'
                  '<th>Abnormal</th><th>Crash-free</th><th>Last session</th></tr>$rows</table>',
                  form=form, chart=bar_chart(bars, label="crash-free sessions per release"), rows=join(table))


def _badge(status: str, title: str = "") -> Markup:
    css = status if status in _CHECK_IN_STATUSES else "other"
    return render('<span class="badge checkin-$css" title="$t">$s</span>', css=css, s=status, t=title or status)


def _schedule(config: Any) -> str:
    schedule = config.get("schedule") if isinstance(config, dict) else None
    if not isinstance(schedule, dict):
        return "-"
    value = schedule.get("value")
    if schedule.get("type") == "interval" and schedule.get("unit"):
        return f"every {value} {schedule['unit']}"
    return str(value if value is not None else "-")


def monitors_body(monitors: list[dict[str, Any]], limit: int) -> Markup:
    """Every monitor: status, schedule, last and next expected check-in, and the newest check-ins."""
    if not monitors:
        return Markup('<p class="muted">No cron monitors yet: they appear with their first check-in.</p>')
    rows = []
    for monitor in monitors:
        recent = join((_badge(str(c["status"]), f"{when(c['started'])}"
                              + (f", {c['duration']:.1f} s" if isinstance(c["duration"], (int, float)) else ""))
                       for c in monitor["recent"]), " ")
        rows.append(render('<tr><td>$project</td><td><code>$slug</code></td><td>$status</td><td>$schedule</td>'
                           '<td>$last</td><td>$next</td><td class="recent">$recent</td></tr>',
                           project=monitor["project"], slug=monitor["slug"], status=_badge(str(monitor["status"])),
                           schedule=_schedule(monitor["config"]), last=when(monitor["last_checkin"]),
                           next=when(monitor["next_expected"]), recent=recent))
    note = render('<p class="muted">The first $n monitors.</p>', n=limit) if len(monitors) >= limit else Markup("")
    return render('<table class="monitors"><tr><th>Project</th><th>Monitor</th><th>Status</th><th>Schedule</th>'
                  '<th>Last check-in</th><th>Next expected</th><th>Newest check-ins</th></tr>$rows</table>$note',
                  rows=join(rows), note=note)


def _channels(channels: list[dict[str, Any]]) -> Markup:
    rows = [render('<tr id="channel-$name"><th>$name</th><td class="num depth">$depth</td><td class="num">$cap</td>'
                   '<td>$bar</td><td class="num">$peak</td><td class="num">$flight</td><td class="num">$sent</td>'
                   '<td class="num">$acked</td><td class="num">$waiting</td><td class="num">$age</td></tr>',
                   name=c["name"], depth=c["depth"], cap=c["capacity"], peak=c["peak_depth"], flight=c["in_flight"],
                   sent=c["sent"], acked=c["acked"], waiting=c["senders_waiting"], age=f"{c['oldest_age']:.1f} s",
                   bar=render('<svg width="120" height="10" aria-hidden="true"><rect width="120" height="10" '
                              'fill="#eee"/><rect width="$w" height="10" fill="$f"/></svg>',
                              w=round(120 * min(c["depth"], c["capacity"]) / c["capacity"]) if c["capacity"] else 0,
                              f="#b00" if c["capacity"] and c["depth"] >= c["capacity"] else "#6c5fc7"))
            for c in channels]
    return render('<table class="channels"><tr><th>Channel</th><th>Depth</th><th>Capacity</th><th>Fill</th>'
                  '<th>Peak</th><th>In flight</th><th>Sent</th><th>Acked</th><th>Senders waiting</th>'
                  '<th>Oldest</th></tr>$rows</table>', rows=join(rows))


def status_body(status: dict[str, Any] | None) -> Markup:
    """The pipeline's health, channels, lanes and kill-switches; a note when this process runs no stages."""
    if status is None:
        return Markup('<p class="notice">This process does not run the pipeline: no channel, lane or kill-switch '
                      'state to show. Ask the processes that run the stages (their <code>/metrics</code>).</p>')
    notice = Markup("")
    if not status["stages"]:
        notice = render('<p class="notice">This process runs only the role(s) $roles: the pipeline stages run in '
                        'other processes, so the channels below are only what this process sends; see each '
                        "stage process's <code>/metrics</code> for its side.</p>", roles=", ".join(status["roles"]))
    health = Markup('<p class="ok">Ready.</p>') if status["ready"] else render(
        '<p class="error">Not ready: $r</p>', r="; ".join(status["reasons"]))
    lanes = join(render('<tr><td>$p</td><td>$lane</td><td>$forced</td><td class="num">$cost</td><td>$left</td></tr>',
                        p=row["project_id"], lane=row["lane"], forced=row["forced"] or "-",
                        cost=f"{row['used_budget']:.3f}",
                        left=f"{row['demoted_for']:.0f} s" if row["demoted_for"] else "-") for row in status["lanes"])
    lanes_table = render('<table class="lanes"><tr><th>Project</th><th>Lane</th><th>Forced</th>'
                         '<th>Budget used (s²/s)</th><th>Demoted for</th></tr>$rows</table>', rows=lanes) \
        if status["lanes"] else Markup('<p class="muted">No project has used processing time recently; '
                                       'all are in the fast lane.</p>')
    switches = join(render('<tr><td><code>$n</code></td><td>$s</td><td><code>$v</code></td></tr>',
                           n=s["name"], s=s["stage"], v=s["value"]) for s in status["killswitches"])
    switches_table = render('<table class="killswitches"><tr><th>Switch</th><th>Stage</th><th>In force</th></tr>'
                            '$rows</table>', rows=switches) if status["killswitches"] \
        else Markup('<p class="muted">No kill-switch is in force.</p>')
    extra = []
    if status.get("upstream") is not None:
        extra.append(render("<p>Upstream: $state, $n envelopes forwarded.</p>",
                            state="up" if status["upstream"]["up"] else "DOWN", n=status["upstream"]["forwarded"]))
    if status.get("spool") is not None:
        extra.append(render("<p>Spool: $m envelopes, $b bytes on disk.</p>", m=status["spool"]["messages"],
                            b=status["spool"]["bytes"]))
    return render('$notice<p>Roles: <code>$roles</code></p>$health<h2>Channels</h2>$channels$extra<h2>Lanes</h2>'
                  '$lanes<h2>Kill-switches</h2>$switches', notice=notice, roles=", ".join(status["roles"]),
                  health=health, channels=_channels(status["channels"]), extra=join(extra), lanes=lanes_table,
                  switches=switches_table)
