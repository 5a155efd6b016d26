"""``/api/0/`` handlers for projects and issues: lists, details, status changes (one or in bulk).

Each handler is ``async (api, request, match) -> Response``; ``api`` is the
:class:`~minisentry.api.WebApi` (its read store, writable store and organization slug). Store
calls run in worker threads. Handlers raise RequestError: BadRequest (400) for a bad query or
body, NotFound (404) for an unknown project or issue, MethodNotAllowed (405) when the store cannot
change issues.
"""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import orjson

from .api_shapes import issue_detail_to_api, issue_to_api, link_header, page_params, project_to_api, query_pairs
from .errors import BadRequest, MethodNotAllowed, NotFound
from .httpserver import Request, Response
from .issue_query import parse_period, parse_query
from .issue_status import StatusChange, details_to_api, parse_change
from .jsonbody import json_object

__all__ = ["list_projects", "project_detail", "list_issues", "update_issues", "issue_detail", "update_issue"]

#: Sentry's default issue query when ``query`` is absent (``query=`` lists every status).
DEFAULT_QUERY = "is:unresolved"
#: At most this many issues change in one bulk update without ids (Sentry's limit too).
_BULK_LIMIT = 1000
_SORTS = ("date", "new", "freq")


def _json(value: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(value), headers or [])


async def _run(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


async def list_projects(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/``: every project."""
    projects = await _run(api.store.list_projects)
    firsts = await _run(api.store.project_first_events)
    return _json([project_to_api(project, api.organization, firsts.get(project["id"])) for project in projects])


async def project_detail(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/<org>/<project>/``: one project."""
    project = await _run(api.store.project_by_slug, match["project"])
    firsts = await _run(api.store.project_first_events)
    return _json(project_to_api(project, api.organization, firsts.get(project["id"])))


def _search(params: list[tuple[str, str]]):
    single = dict(params)
    search = parse_query(single.get("query", DEFAULT_QUERY))
    search.period = parse_period(single.get("statsPeriod", ""))
    sort = single.get("sort", "date")
    if sort not in _SORTS:
        raise BadRequest(f"sort must be one of {', '.join(_SORTS)}")
    return search, sort


async def list_issues(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/projects/<org>/<project>/issues/?query=&statsPeriod=&sort=&limit=&cursor=``."""
    params = query_pairs(request.query)
    search, sort = _search(params)
    limit, offset = page_params(request.query)
    project = await _run(api.store.project_by_slug, match["project"])
    issues = await _run(lambda: api.store.find_issues(project["id"], search, sort=sort, limit=limit + 1,
                                                      offset=offset))
    more = len(issues) > limit
    return _json([issue_to_api(issue) for issue in issues[:limit]],
                 headers=[("Link", link_header(request.path, request.query, limit, offset, more))])


def _writer(api: Any) -> Any:
    if api.writer is None or not hasattr(api.writer, "change_issue_status"):
        raise MethodNotAllowed("this store cannot change issues")
    return api.writer


def _change(request: Request) -> StatusChange:
    return parse_change(json_object(request.body), now=time.time())


async def update_issues(api: Any, request: Request, match: re.Match) -> Response:
    """``PUT /api/0/projects/<org>/<project>/issues/?id=1&id=2``: change those issues (without ``id``:
    up to 1000 issues matching ``query``, by default the unresolved ones). Answers Sentry's
    ``{"status", "statusDetails"}``, or 204 when no issue matched."""
    writer = _writer(api)
    change = _change(request)
    params = query_pairs(request.query)
    project = await _run(writer.project_by_slug, match["project"])
    try:
        ids = [int(value) for name, value in params if name == "id"]
    except ValueError as exc:
        raise BadRequest("id must be an issue id") from exc
    if not ids:
        search, sort = _search(params)
        found = await _run(lambda: writer.find_issues(project["id"], search, sort=sort, limit=_BULK_LIMIT))
        ids = [issue["id"] for issue in found]
    changed = await _run(lambda: writer.change_issue_status(ids, change, project["id"]))
    if not changed:
        return Response(204, b"", [])
    issue = await _run(writer.get_issue, changed[0])
    return _json({"status": issue["status"], "statusDetails": details_to_api(issue["status"], issue["status_details"])})


async def _detail(store: Any, issue_id: int) -> dict[str, Any]:
    issue = await _run(store.get_issue, issue_id)
    releases = await _run(store.issue_releases, issue_id)
    activity = await _run(store.issue_activity, issue_id)
    return issue_detail_to_api(issue, releases, activity)


async def issue_detail(api: Any, request: Request, match: re.Match) -> Response:
    """``GET /api/0/issues/<id>/`` (also under ``/organizations/<org>/``): one issue."""
    return _json(await _detail(api.store, int(match["issue"])))


async def update_issue(api: Any, request: Request, match: re.Match) -> Response:
    """``PUT /api/0/issues/<id>/``: change one issue's status; answers the updated issue."""
    writer = _writer(api)
    change = _change(request)
    issue_id = int(match["issue"])
    if not await _run(lambda: writer.change_issue_status([issue_id], change)):
        raise NotFound(f"no issue {issue_id}")
    return _json(await _detail(writer, issue_id))
