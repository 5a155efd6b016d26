"""The web UI's page bodies: sign-in form, project list, issue stream and issue detail.

Pure functions from store rows to escaped :class:`~minisentry.web.html.Markup`; the routes
(``routes.py``) fetch the rows and wrap the bodies in the layout. Nothing blocks or raises.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from ..backends.sqlite_web import ISSUE_SORTS, ISSUE_STATUSES
from ..issue_status import describe
from .html import Markup, join, render

__all__ = ["login_body", "projects_body", "issues_body", "issue_body", "LEVELS"]

#: Levels offered by the issue stream's filter.
LEVELS = ("fatal", "error", "warning", "info", "debug")


def when(timestamp: float | None) -> str:
    """Unix seconds as ``2024-01-31 12:00:00 UTC`` for a page ("-" for None). Never raises."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def login_body(csrf: str, error: str = "") -> Markup:
    """The sign-in form (email, password, the sign-in form's CSRF token)."""
    return render("""$error<form method="post" action="/ui/login">
<p><label>Email <input type="email" name="email" required autofocus></label></p>
<p><label>Password <input type="password" name="password" required></label></p>
<input type="hidden" name="csrf_token" value="$csrf"><button type="submit">Sign in</button></form>""",
                  error=render('<p class="error">$e</p>', e=error) if error else Markup(""), csrf=csrf)


def projects_body(projects: list[dict[str, Any]], dsn_of: Any) -> Markup:
    """The project list: slug (linking to its issues) and DSNs (``dsn_of(key, project_id)``)."""
    rows = [render('<tr><td><a href="/ui/projects/$slug/issues/">$slug</a></td><td>$id</td><td>$dsns</td></tr>',
                   slug=project["slug"], id=project["id"],
                   dsns=join((render("<div><code>$d</code></div>", d=dsn_of(key, project["id"]))
                              for key in project.get("keys", [])))) for project in projects]
    return render("<table><tr><th>Project</th><th>Id</th><th>DSNs</th></tr>$rows</table>", rows=join(rows))


def _select(name: str, current: str, options: tuple[str, ...], blank: str | None) -> Markup:
    choices = [render('<option value=""$sel>$label</option>', sel=Markup(" selected") if not current else Markup(""),
                      label=blank)] if blank is not None else []
    choices += [render('<option value="$v"$sel>$v</option>', v=option,
                       sel=Markup(" selected") if option == current else Markup("")) for option in options]
    return render('<select name="$name">$choices</select>', name=name, choices=join(choices))


def issues_body(project: str, issues: list[dict[str, Any]], params: dict[str, str], page: int, more: bool) -> Markup:
    """The issue stream: the search form, one page of issues and previous/next links."""
    form = render("""<form method="get" class="search"><input type="search" name="query" value="$query"
placeholder="Search title or culprit"> $status $level <input type="text" name="release" value="$release"
placeholder="release" size="14"> <input type="text" name="environment" value="$environment" placeholder="environment"
size="12"> Sort $sort <button type="submit">Search</button></form>""",
                  query=params.get("query", ""), release=params.get("release", ""),
                  environment=params.get("environment", ""),
                  status=_select("status", params.get("status", ""), ISSUE_STATUSES, "any status"),
                  level=_select("level", params.get("level", ""), LEVELS, "any level"),
                  sort=_select("sort", params.get("sort", "last_seen"), tuple(ISSUE_SORTS), None))
    rows = [render("""<tr><td><a href="/ui/issues/$id/">$title</a><div class="muted">$culprit</div></td>
<td class="level-$level">$level</td><td class="status-$status">$status</td><td>$count</td><td>$first</td><td>$last</td></tr>""",
                   id=issue["id"], title=issue["title"] or "(no title)", culprit=issue["culprit"] or "",
                   level=issue["level"], status=issue["status"], count=issue["count"],
                   first=when(issue["first_seen"]), last=when(issue["last_seen"])) for issue in issues]
    table = render("""<table class="issues"><tr><th>Issue</th><th>Level</th><th>Status</th><th>Events</th>
<th>First seen</th><th>Last seen</th></tr>$rows</table>""", rows=join(rows)) if rows \
        else Markup('<p class="muted">No issues match.</p>')
    kept = ("query", "status", "level", "release", "environment", "sort")
    keep = {key: value for key, value in params.items() if key in kept and value}
    links = []
    if page > 1:
        links.append(render('<a rel="prev" href="?$q">Previous</a>', q=urlencode({**keep, "page": page - 1})))
    if more:
        links.append(render('<a rel="next" href="?$q">Next</a>', q=urlencode({**keep, "page": page + 1})))
    return render('<p><a href="/ui/">All projects</a> · $project</p>$form$table<nav class="pages">$links</nav>',
                  project=project, form=form, table=table, links=join(links))


def _status_form(issue_id: int, csrf: str, status: str, label: str, fields: str = "") -> Markup:
    return render("""<form method="post" action="/ui/issues/$id/status" class="inline status-control">
<input type="hidden" name="csrf_token" value="$csrf"><input type="hidden" name="status" value="$status">$fields
<button type="submit">$label</button></form>""", id=issue_id, csrf=csrf, status=status, label=label,
                  fields=Markup(fields))


def _status_controls(issue: dict[str, Any], csrf: str) -> Markup:
    """Resolve, resolve in next release, ignore (forever, N more events, until a time), unresolve."""
    status, forms = issue["status"], []
    if status != "resolved" or issue.get("status_details"):
        forms.append(_status_form(issue["id"], csrf, "resolved", "Resolve"))
    if status != "resolved" or not (issue.get("status_details") or {}).get("inNextRelease"):
        forms.append(_status_form(issue["id"], csrf, "resolvedInNextRelease", "Resolve in next release"))
    if status != "ignored":
        forms.append(_status_form(issue["id"], csrf, "ignored", "Ignore forever",
                                  '<input type="hidden" name="ignore" value="forever">'))
        forms.append(_status_form(issue["id"], csrf, "ignored", "Ignore", '<input type="hidden" name="ignore" '
                                  'value="count">for <input type="number" name="count" min="1" value="10" '
                                  'required> more events'))
        forms.append(_status_form(issue["id"], csrf, "ignored", "Ignore", '<input type="hidden" name="ignore" '
                                  'value="until">until <input type="datetime-local" name="until" required> UTC'))
    if status != "unresolved":
        forms.append(_status_form(issue["id"], csrf, "unresolved", "Unresolve"))
    return render('<div class="status-controls">$forms</div>', forms=join(forms))


def issue_body(issue: dict[str, Any], event: Markup | None, csrf: str, insights: Markup = Markup(""),
               panels: Markup = Markup("")) -> Markup:
    """Issue detail: title, culprit, counts, first/last seen, the status with its details and the
    controls to change it, ``insights`` (the chart and tag breakdown of issue_insights.py), the plugins'
    ``panels`` (panels.py) and ``event``, the newest event's section (event_view.py; None: no event)."""
    details = describe(issue["status"], issue.get("status_details") or {}, issue["count"])
    return render("""<p><a href="/ui/projects/$project/issues/">$project</a></p>
<p class="culprit">$culprit</p>
<table class="summary"><tr><th>Status</th><td class="status-$status" id="status">$status</td></tr>
<tr><th>Status details</th><td id="status-details">$details</td></tr>
<tr><th>Level</th><td class="level-$level">$level</td></tr><tr><th>Events</th><td>$count</td></tr>
<tr><th>First seen</th><td>$first</td></tr><tr><th>Last seen</th><td>$last</td></tr></table>
$controls$insights$panels$event""",
                  project=issue["project"], culprit=issue["culprit"] or "", status=issue["status"], details=details,
                  level=issue["level"], count=issue["count"], first=when(issue["first_seen"]),
                  last=when(issue["last_seen"]), controls=_status_controls(issue, csrf), insights=insights,
                  panels=panels, event=event if event is not None else Markup('<p class="muted">No event stored.</p>'))
