"""``/api/0/`` handlers for events and their attachments.

Each handler is ``async (api, request, match) -> Response`` reading ``api.store`` in worker
threads. Lists are newest first and paginated with Sentry's ``Link`` cursors; ``?full=true`` adds
each event's ``entries``, ``contexts`` and ``sdk`` (single events always have them). Handlers raise
BadRequest (400) for a bad cursor, NotFound (404) for an unknown issue, project, event or attachment.
"""

from __future__ import annotations

import re
from typing import Any

import anyio
import orjson

from .api_shapes import attachment_to_api, event_to_api, link_header, page_params, query_pairs
from .errors import NotFound
from .httpserver import Request, Response
from .web.downloads import content_disposition

__all__ = ["issue_events", "latest_event", "project_events", "project_event", "attachments", "attachment"]


async def _run(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


def _full(request: Request) -> bool:
    return dict(query_pairs(request.query)).get("full", "").lower() in ("1", "true", "yes")


def _page(request: Request, rows: list[dict[str, Any]], limit: int, offset: int) -> Response:
    body = orjson.dumps([event_to_api(row, full=_full(request)) for row in rows[:limit]])
    link = link_header(request.path, request.query, limit, offset, len(rows) > limit)
    return Response(200, body, [("Link", link)])


async def issue_events(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/issues/<id>/events/?limit=&cursor=&full=``: an issue's events."""
    limit, offset = page_params(request.query)
    rows = await _run(lambda: api.store.issue_events(int(match["issue"]), limit=limit + 1, offset=offset))
    return _page(request, rows, limit, offset)


async def latest_event(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/issues/<id>/events/latest/``: the newest event of an issue."""
    event = await _run(api.store.latest_event, int(match["issue"]))
    return Response(200, orjson.dumps(event_to_api(event)))


async def project_events(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/<org>/<project>/events/?limit=&cursor=&full=``: a project's error events."""
    limit, offset = page_params(request.query)
    project = await _run(api.store.project_by_slug, match["project"])
    rows = await _run(lambda: api.store.project_events(project["id"], limit=limit + 1, offset=offset))
    return _page(request, rows, limit, offset)


async def project_event(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/<org>/<project>/events/<event_id>/``: one event."""
    project = await _run(api.store.project_by_slug, match["project"])
    event = await _run(api.store.project_event, project["id"], match["event"])
    return Response(200, orjson.dumps(event_to_api(event)))


async def _attachments(api: Any, project: str, event_id: str) -> list[dict[str, Any]]:
    project_id = (await _run(api.store.project_by_slug, project))["id"]
    rows = await _run(api.store.list_attachments, event_id, project_id)
    return [row for row in rows if row["project_id"] == project_id]


async def attachments(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/<org>/<project>/events/<event_id>/attachments/``: an event's attachments."""
    rows = await _attachments(api, match["project"], match["event"])
    return Response(200, orjson.dumps([attachment_to_api(row) for row in rows]))


async def attachment(api: Any, request: Request, match: re.Match) -> Response:
    """``.../attachments/<id>/`` (metadata) and ``.../attachments/<id>/?download`` (the bytes)."""
    attachment_id = int(match["attachment"])
    rows = await _attachments(api, match["project"], match["event"])
    if attachment_id not in {row["id"] for row in rows}:
        raise NotFound(f"no attachment {attachment_id} for event {match['event']}")
    meta, data = await _run(api.store.attachment_data, attachment_id)
    if "download" not in dict(query_pairs(request.query)):
        return Response(200, orjson.dumps(attachment_to_api(meta)))
    # Always octet-stream with nosniff: an uploaded text/html must not render on this origin.
    return Response(200, data, [("Content-Disposition", content_disposition(meta["filename"])),
                                ("X-Content-Type-Options", "nosniff")],
                    content_type="application/octet-stream")
