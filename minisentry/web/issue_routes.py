"""Routes of an issue's pages and attachment downloads, served by :class:`~minisentry.web.routes.WebUi`::

    GET /ui/issues/<id>/                      the issue, its chart and tags, plugin panels, its newest event
    GET /ui/issues/<id>/events/               all its events, newest first (?page=, 50 a page)
    GET /ui/issues/<id>/events/<event_id>/    one of its events (404 for another issue's event)
    GET /ui/attachments/<id>/                 an attachment's bytes, as a download (downloads.py)

Store reads run in worker threads and are bounded (LIMITs, the newest 1,000 events for tags).
"""

from __future__ import annotations

import re
import time
from typing import Any

import anyio

from ..errors import NotFound
from ..httpserver import Request
from .downloads import content_disposition
from .event_nav import EVENTS_PAGE_SIZE, event_nav, events_list_body
from .event_view import render_event
from .html import Markup, render
from .issue_insights import ISSUE_PERIODS, MAX_TAG_EVENTS, insights_body
from .pages import issue_body
from .panels import render_panels
from .periods import bucket_starts, parse_period, parse_query

__all__ = ["IssueRoutes"]

_ISSUE_RE = re.compile(r"^/ui/issues/(\d{1,18})/?$")
_EVENTS_RE = re.compile(r"^/ui/issues/(\d{1,18})/events/?$")
_EVENT_RE = re.compile(r"^/ui/issues/(\d{1,18})/events/([0-9a-fA-F-]{32,36})/?$")
_ATTACHMENT_RE = re.compile(r"^/ui/attachments/(\d{1,18})/?$")
_MAX_PAGE = 10_000


async def _run(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


class IssueRoutes:
    """Renders issue and event pages from ``store``; ``panels`` (``collect_panels``) render on
    ``reader``, the read-only store (None: no panels)."""

    def __init__(self, store: Any, reader: Any = None, panels: dict[str, Any] | None = None) -> None:
        self.store = store
        self.reader = reader
        self.panels = panels or {}

    async def page(self, path: str, request: Request, csrf: str) -> tuple[str, Markup] | None:
        """``(title, body)`` of the issue page at ``path``, or None when ``path`` is not one of them.

        Raises NotFound (unknown issue, or an event that is not the issue's), StorageError.
        """
        match = _ISSUE_RE.match(path)
        if match is not None:
            return await self._issue(int(match.group(1)), request, csrf)
        match = _EVENT_RE.match(path)
        if match is not None:
            return await self._event(int(match.group(1)), match.group(2))
        match = _EVENTS_RE.match(path)
        if match is not None:
            return await self._events(int(match.group(1)), request)
        return None

    async def attachment(self, path: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """The headers and bytes answering ``/ui/attachments/<id>/``, or None for another path.

        The bytes go out as ``application/octet-stream`` (the caller's content type), never as the
        type the SDK declared. Raises NotFound, StorageError.
        """
        match = _ATTACHMENT_RE.match(path)
        if match is None:
            return None
        meta, data = await _run(self.store.attachment_data, int(match.group(1)))
        return [("Content-Disposition", content_disposition(meta["filename"]))], data

    async def _issue(self, issue_id: int, request: Request, csrf: str) -> tuple[str, Markup]:
        issue = await _run(self.store.get_issue, issue_id)
        try:
            event = await _run(self.store.latest_event, issue_id)
        except NotFound:
            event = None
        period = parse_period(parse_query(request.query).get("period"), ISSUE_PERIODS, ISSUE_PERIODS[0])
        now = time.time()
        start = bucket_starts(period, now)[0]
        series = await _run(lambda: self.store.issue_event_series(issue_id, start, start + period.seconds,
                                                                  period.interval))
        total, counts = await _run(lambda: self.store.issue_tag_counts(issue_id, max_events=MAX_TAG_EVENTS))
        insights = insights_body(issue_id, period, series, now, total, counts)
        panels = await render_panels(self.panels, issue, self.reader)
        shown = await self._event_section(issue_id, event, "Latest event") if event is not None else None
        return issue["title"] or f"Issue {issue_id}", issue_body(issue, shown, csrf, insights, panels)

    async def _event(self, issue_id: int, event_id: str) -> tuple[str, Markup]:
        issue = await _run(self.store.get_issue, issue_id)
        event = await _run(self.store.issue_event, issue_id, event_id)
        body = render('<p><a href="/ui/projects/$project/issues/">$project</a> · <a href="/ui/issues/$id/">$title</a>'
                      '</p>$event', project=issue["project"], id=issue_id, title=issue["title"] or f"issue {issue_id}",
                      event=await self._event_section(issue_id, event, "Event"))
        return f"Event {event['event_id'][:12]} of issue {issue_id}", body

    async def _event_section(self, issue_id: int, event: dict[str, Any], heading: str) -> Markup:
        neighbours = await _run(self.store.issue_event_neighbours, issue_id, event["event_id"])
        attachments = await _run(self.store.list_attachments, event["event_id"], event["project_id"])
        return render_event(event, attachments=attachments, heading=heading,
                            nav=event_nav(issue_id, event["event_id"], neighbours))

    async def _events(self, issue_id: int, request: Request) -> tuple[str, Markup]:
        issue = await _run(self.store.get_issue, issue_id)
        try:
            number = min(max(int(parse_query(request.query).get("page", "1")), 1), _MAX_PAGE)
        except ValueError:
            number = 1
        rows = await _run(lambda: self.store.issue_event_summaries(
            issue_id, limit=EVENTS_PAGE_SIZE + 1, offset=(number - 1) * EVENTS_PAGE_SIZE))
        body = events_list_body(issue, rows[:EVENTS_PAGE_SIZE], number, len(rows) > EVENTS_PAGE_SIZE)
        return f"Events of issue {issue_id}", body
