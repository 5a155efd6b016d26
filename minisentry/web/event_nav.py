"""Moving between an issue's events: the Newest / Older / Newer / Oldest links and the "All events" list.

Pure functions from store rows to escaped :class:`Markup`; nothing blocks or raises.
"""

from __future__ import annotations

from typing import Any

from .event_sections import time_text, to_text
from .html import Markup, join, render

__all__ = ["event_nav", "events_list_body", "event_path", "EVENTS_PAGE_SIZE"]

#: Events per page of an issue's "All events" list.
EVENTS_PAGE_SIZE = 50
_LINKS = (("newest", "Newest", "first"), ("older", "Older", "next"), ("newer", "Newer", "prev"),
          ("oldest", "Oldest", "last"))


def event_path(issue_id: int, event_id: str) -> str:
    """The web UI path of one event of an issue."""
    return f"/ui/issues/{int(issue_id)}/events/{event_id}/"


def event_nav(issue_id: int, current: str, neighbours: dict[str, str | None]) -> Markup:
    """Links to the issue's newest, older, newer and oldest events seen from event ``current``
    (``neighbours`` from the store's ``issue_event_neighbours``); the one that is this event, or
    missing, is shown as plain text. Then the link to all events."""
    links = []
    for key, label, rel in _LINKS:
        target = neighbours.get(key)
        if target is None or target == current:
            links.append(render('<span class="muted" id="nav-$key">$label</span>', key=key, label=label))
        else:
            links.append(render('<a id="nav-$key" rel="$rel" href="$href">$label</a>', key=key, rel=rel,
                                href=event_path(issue_id, target), label=label))
    links.append(render('<a id="nav-all" href="/ui/issues/$id/events/">All events</a>', id=int(issue_id)))
    return render('<nav class="pages event-nav">$links</nav>', links=join(links, " "))


def _user(user: dict[str, Any]) -> str:
    for key in ("email", "username", "id", "ip_address"):
        if user.get(key) not in (None, ""):
            return to_text(user[key])
    return ""


def events_list_body(issue: dict[str, Any], rows: list[dict[str, Any]], page: int, more: bool) -> Markup:
    """One page of an issue's events (store rows from ``issue_event_summaries``): id, time, release,
    environment, message or title, user; with previous/next page links."""
    issue_id = int(issue["id"])
    lines = [render('<tr><td><a href="$href"><code>$short</code></a></td><td>$time</td><td>$release</td>'
                    '<td>$environment</td><td>$message</td><td>$user</td></tr>',
                    href=event_path(issue_id, row["event_id"]), short=row["event_id"][:12],
                    time=time_text(row["timestamp"]), release=to_text(row["release"] or "-"),
                    environment=to_text(row["environment"] or "-"),
                    message=to_text(row["message"] or row["title"] or "")[:300], user=_user(row["user"]))
             for row in rows]
    table = render('<table class="events"><tr><th>Event</th><th>Time</th><th>Release</th><th>Environment</th>'
                   '<th>Message</th><th>User</th></tr>$rows</table>', rows=join(lines)) if lines \
        else Markup('<p class="muted">No events on this page.</p>')
    links = []
    if page > 1:
        links.append(render('<a rel="prev" href="?page=$p">Previous</a>', p=page - 1))
    if more:
        links.append(render('<a rel="next" href="?page=$p">Next</a>', p=page + 1))
    return render('<p><a href="/ui/projects/$project/issues/">$project</a> · <a href="/ui/issues/$id/">issue $id</a>'
                  '</p>$table<nav class="pages">$links</nav>', project=issue["project"], id=issue_id, table=table,
                  links=join(links))
