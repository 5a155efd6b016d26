"""The web API under ``/api/0/``, in Sentry's shapes, behind bearer tokens with Sentry's scopes.

Routes (scope needed; a stronger one of its family will do, see ``api_auth.py``)::

    GET /api/0/projects/                                        projects                 project:read
    GET /api/0/projects/<org>/<project>/                        one project              project:read
    GET /api/0/projects/<org>/<project>/issues/?query=&statsPeriod=&sort=&limit=&cursor=   event:read
    PUT /api/0/projects/<org>/<project>/issues/?id=1&id=2       bulk status change       event:write
    GET /api/0/issues/<id>/                                     one issue                event:read
    PUT /api/0/issues/<id>/                                     change its status        event:write
    GET /api/0/issues/<id>/events/?limit=&cursor=&full=         its events               event:read
    GET /api/0/issues/<id>/events/latest/                       its newest event         event:read
        (the four issue routes also under /api/0/organizations/<org>/issues/<id>/...)
    GET /api/0/projects/<org>/<project>/events/?limit=&cursor=&full=   a project's events   event:read
    GET /api/0/projects/<org>/<project>/events/<event_id>/      one event                event:read
    GET /api/0/projects/<org>/<project>/events/<event_id>/attachments/[<id>/[?download]]   event:read
    GET /api/0/organizations/<org>/stats_v2/?groupBy=outcome&groupBy=category&interval=1h&statsPeriod=24h
                                                                outcomes over time       org:read
    GET /api/0/plugins/<name>/<path>                            a plugin's read route    project:read
                                                                (``minisentry_register_api_routes``)

There is one organization: any ``<org>`` slug is accepted. Reads use a read-only store; status
changes and token lookups use the writable one. Pagination follows Sentry's ``Link`` header with
cursors. Errors are answered by the relay as ``{"detail": ...}``: 400 bad query or body, 401 no
token, 403 unknown token or missing scope (named), 404 unknown route or object, 405 wrong method.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import anyio
import orjson

from . import api_events, api_issues
from .api_auth import ApiAuth, check_bearer
from .api_shapes import event_to_api, issue_to_api
from .errors import BadRequest, MethodNotAllowed, NotFound
from .httpserver import Request, Response
from .stats import stats_v2

__all__ = ["WebApi", "ReadApi", "issue_to_api", "event_to_api", "check_bearer"]

Handler = Callable[[Any, Request, "re.Match[str]"], Awaitable[Response]]

_ORG = r"(?P<org>[\w.-]+)"
_PROJECT = rf"/api/0/projects/{_ORG}/(?P<project>[\w-]+)"
_ISSUE = rf"/api/0/(?:organizations/{_ORG}/)?issues/(?P<issue>\d{{1,18}})"
_EVENT = rf"{_PROJECT}/events/(?P<event>[0-9a-fA-F-]{{32,36}})"


async def _stats(api: "WebApi", request: Request, match: re.Match) -> Response:
    params = parse_qsl(request.query)
    fields = [value for name, value in params if name == "field"] or ["sum(quantity)"]
    if fields != ["sum(quantity)"]:
        raise BadRequest("only field=sum(quantity) is supported")
    group_by = tuple(value for name, value in params if name == "groupBy") or ("outcome",)
    single = dict(params)
    try:
        projects = [int(value) for name, value in params if name == "project"] or None
    except ValueError as exc:
        raise BadRequest("project must be a project id") from exc
    result = await anyio.to_thread.run_sync(lambda: stats_v2(
        api.store, interval=single.get("interval", "1h"), period=single.get("statsPeriod", "24h"),
        group_by=group_by, project_ids=projects))
    return Response(200, orjson.dumps(result))


async def _plugin_route(api: "WebApi", request: Request, match: re.Match) -> Response:
    """A plugin's ``get(db, path, query)`` on a read-only view of the store, in a worker thread.

    What it returns is sent as JSON; RequestErrors it raises (NotFound, BadRequest) are answered
    as such; any other exception is the plugin's bug, logged and answered 500 by the server.
    """
    name, path = match["name"], match["path"] or ""
    route = api.plugin_routes.get(name)
    if route is None or not hasattr(api.store, "read_plugin"):
        raise NotFound(f"no plugin route {name!r}")
    query = dict(parse_qsl(request.query))
    result = await anyio.to_thread.run_sync(api.store.read_plugin, lambda db: route.get(db, path.strip("/"), query))
    return Response(200, orjson.dumps(result))


#: (path pattern, {method: (handler, scope)}), tried in order.
_ROUTES: list[tuple["re.Pattern[str]", dict[str, tuple[Handler, str]]]] = [
    (re.compile(r"^/api/0/projects/?$"), {"GET": (api_issues.list_projects, "project:read")}),
    (re.compile(rf"^{_PROJECT}/?$"), {"GET": (api_issues.project_detail, "project:read")}),
    (re.compile(rf"^{_PROJECT}/issues/?$"), {"GET": (api_issues.list_issues, "event:read"),
                                             "PUT": (api_issues.update_issues, "event:write")}),
    (re.compile(rf"^{_ISSUE}/?$"), {"GET": (api_issues.issue_detail, "event:read"),
                                    "PUT": (api_issues.update_issue, "event:write")}),
    (re.compile(rf"^{_ISSUE}/events/?$"), {"GET": (api_events.issue_events, "event:read")}),
    (re.compile(rf"^{_ISSUE}/events/latest/?$"), {"GET": (api_events.latest_event, "event:read")}),
    (re.compile(rf"^{_PROJECT}/events/?$"), {"GET": (api_events.project_events, "event:read")}),
    (re.compile(rf"^{_EVENT}/?$"), {"GET": (api_events.project_event, "event:read")}),
    (re.compile(rf"^{_EVENT}/attachments/?$"), {"GET": (api_events.attachments, "event:read")}),
    (re.compile(rf"^{_EVENT}/attachments/(?P<attachment>\d{{1,18}})/?$"),
     {"GET": (api_events.attachment, "event:read")}),
    (re.compile(rf"^/api/0/organizations/{_ORG}/stats_v2/?$"), {"GET": (_stats, "org:read")}),
    (re.compile(r"^/api/0/plugins/(?P<name>[a-z][a-z0-9_-]{0,39})(?:/(?P<path>.*))?$"),
     {"GET": (_plugin_route, "project:read")}),
]


class WebApi:
    """Answers ``/api/0/`` requests (see the module docstring); store calls run in worker threads.

    ``store`` is read-only and serves reads; ``writer`` (the writable store, may be None) serves
    status changes and the stored tokens. ``organization`` is the slug projects are shown under.
    """

    def __init__(self, store: Any, tokens: list[str], plugin_routes: dict[str, Any] | None = None, *,
                 writer: Any = None, organization: str = "minisentry") -> None:
        self.store = store
        self.writer = writer
        self.organization = organization
        self.auth = ApiAuth(tokens, writer, reader=store)
        #: Plugins' read routes by name (``minisentry_register_api_routes``).
        self.plugin_routes = plugin_routes or {}

    async def handle(self, request: Request) -> Response:
        """Answer one API request. Raises RequestError (400, 401, 403, 404, 405), StorageError."""
        principal = await self.auth.authenticate(request)
        for pattern, methods in _ROUTES:
            match = pattern.match(request.path)
            if match is None:
                continue
            if request.method not in methods:
                raise MethodNotAllowed(f"{request.method} is not allowed here (allowed: {', '.join(methods)})")
            handler, scope = methods[request.method]
            principal.require(scope)
            return await handler(self, request, match)
        raise NotFound(f"no route for {request.path}")


#: The name this class had while the API only read.
ReadApi = WebApi
