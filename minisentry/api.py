"""The read API under ``/api/0/``, in Sentry's shapes, behind bearer tokens.

Routes::

    GET /api/0/projects/<org>/<project>/issues/     issues of a project, most recently seen first
    GET /api/0/issues/<issue_id>/events/latest/     the newest event of an issue
    GET /api/0/organizations/<org>/stats_v2/?groupBy=outcome&groupBy=category&interval=1h&statsPeriod=24h
    GET /api/0/projects/<org>/<project>/events/<event_id>/attachments/           an event's attachments
    GET /api/0/projects/<org>/<project>/events/<event_id>/attachments/<id>/?download   one, as a file
    GET /api/0/plugins/<name>/<path>               a plugin's read route (``minisentry_register_api_routes``)

There is one organization: any ``<org>`` slug is accepted. Tokens come from ``[api] tokens``; with
none configured every call is refused. Pagination follows Sentry's ``Link`` header with cursors.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson

from .errors import AuthForbidden, AuthMissing, BadRequest, MethodNotAllowed, NotFound
from .httpserver import Request, Response
from .stats import stats_v2

__all__ = ["ReadApi", "issue_to_api", "event_to_api", "check_bearer"]

_ISSUES_RE = re.compile(r"^/api/0/projects/([\w.-]+)/([\w-]+)/issues/?$")
_LATEST_RE = re.compile(r"^/api/0/issues/(\d{1,18})/events/latest/?$")
_STATS_RE = re.compile(r"^/api/0/organizations/([\w.-]+)/stats_v2/?$")
_ATTACHMENTS_RE = re.compile(r"^/api/0/projects/([\w.-]+)/([\w-]+)/events/([0-9a-fA-F-]{32,36})/attachments/?$")
_ATTACHMENT_RE = re.compile(r"^/api/0/projects/([\w.-]+)/([\w-]+)/events/([0-9a-fA-F-]{32,36})/attachments/(\d{1,18})/?$")
_PLUGIN_RE = re.compile(r"^/api/0/plugins/([a-z][a-z0-9_-]{0,39})(?:/(.*))?$")
_MAX_LIMIT = 100


def check_bearer(request: Request, tokens: list[bytes]) -> None:
    """Check ``Authorization: Bearer <token>`` against ``tokens``. Raises AuthMissing (401), AuthForbidden (403)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthMissing("authentication credentials were not provided")
    given = token.strip().encode()
    if not any(hmac.compare_digest(given, known) for known in tokens):
        raise AuthForbidden("invalid token")


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def issue_to_api(issue: dict[str, Any]) -> dict[str, Any]:
    """Render a stored issue with Sentry's field names."""
    metadata = issue.get("metadata") or {}
    return {
        "id": str(issue["id"]),
        "shortId": f"{issue['project'].upper()}-{issue['id']}",
        "title": issue["title"],
        "culprit": issue["culprit"],
        "level": issue["level"],
        "status": issue["status"],
        "statusDetails": {},
        "type": "error" if "type" in metadata else "default",
        "metadata": metadata,
        "project": {"id": str(issue["project_id"]), "slug": issue["project"], "name": issue["project"]},
        "count": str(issue["count"]),
        "userCount": 0,
        "numComments": 0,
        "isBookmarked": False,
        "isPublic": False,
        "hasSeen": False,
        "assignedTo": None,
        "firstSeen": _iso(issue["first_seen"]),
        "lastSeen": _iso(issue["last_seen"]),
    }


def event_to_api(event: dict[str, Any]) -> dict[str, Any]:
    """Render a stored event with Sentry's field names (``entries`` for the interfaces)."""
    data = event["data"]
    entries = []
    for name in ("exception", "threads", "stacktrace", "breadcrumbs", "request", "logentry"):
        if data.get(name):
            entries.append({"type": "message" if name == "logentry" else name, "data": data[name]})
    tags = data.get("tags") or []
    return {
        "id": event["event_id"],
        "eventID": event["event_id"],
        "groupID": str(event["issue_id"]) if event.get("issue_id") is not None else None,
        "projectID": str(event["project_id"]),
        "title": data.get("title", ""),
        "culprit": data.get("culprit", ""),
        "message": (data.get("logentry") or {}).get("formatted", ""),
        "platform": data.get("platform"),
        "type": data.get("type", "default"),
        "metadata": data.get("metadata", {}),
        "dateCreated": _iso(data.get("timestamp")),
        "dateReceived": _iso(data.get("received")),
        "release": data.get("release"),
        "environment": data.get("environment"),
        "tags": [{"key": k, "value": v} for k, v in tags if isinstance(k, str)] if isinstance(tags, list) else [],
        "user": data.get("user"),
        "contexts": data.get("contexts", {}),
        "sdk": data.get("sdk"),
        "fingerprints": data.get("fingerprint", []),
        "entries": entries,
    }


def _attachment_to_api(row: dict[str, Any]) -> dict[str, Any]:
    """Render an attachment's metadata with Sentry's field names."""
    return {"id": str(row["id"]), "name": row["filename"], "mimetype": row["content_type"],
            "type": row["attachment_type"], "size": row["size"], "event_id": row["event_id"]}


class ReadApi:
    """Answers ``/api/0/`` requests from a read-only store. Store calls run in worker threads."""

    def __init__(self, store: Any, tokens: list[str], plugin_routes: dict[str, Any] | None = None) -> None:
        self.store = store
        self.tokens = [token.encode() for token in tokens]
        #: Plugins' read routes by name (``minisentry_register_api_routes``).
        self.plugin_routes = plugin_routes or {}

    def _authorize(self, request: Request) -> None:
        check_bearer(request, self.tokens)

    async def handle(self, request: Request) -> Response:
        """Answer one API request. Raises RequestError (401, 403, 404, 405, 400)."""
        self._authorize(request)
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} is not allowed here")
        match = _ISSUES_RE.match(request.path)
        if match is not None:
            return await self._issues(request, match.group(2))
        match = _LATEST_RE.match(request.path)
        if match is not None:
            event = await anyio.to_thread.run_sync(self.store.latest_event, int(match.group(1)))
            return Response(200, orjson.dumps(event_to_api(event)))
        if _STATS_RE.match(request.path):
            return await self._stats(request)
        match = _ATTACHMENTS_RE.match(request.path)
        if match is not None:
            rows = await self._attachments(match.group(2), match.group(3))
            return Response(200, orjson.dumps([_attachment_to_api(row) for row in rows]))
        match = _ATTACHMENT_RE.match(request.path)
        if match is not None:
            return await self._attachment(request, match.group(2), match.group(3), int(match.group(4)))
        match = _PLUGIN_RE.match(request.path)
        if match is not None:
            return await self._plugin_route(request, match.group(1), match.group(2) or "")
        raise NotFound(f"no route for {request.path}")

    async def _plugin_route(self, request: Request, name: str, path: str) -> Response:
        """A plugin's ``get(db, path, query)`` on a read-only view of the store, in a worker thread.

        What it returns is sent as JSON; RequestErrors it raises (NotFound, BadRequest) are answered
        as such; any other exception is the plugin's bug, logged and answered 500 by the server.
        """
        route = self.plugin_routes.get(name)
        if route is None or not hasattr(self.store, "read_plugin"):
            raise NotFound(f"no plugin route {name!r}")
        query = dict(parse_qsl(request.query))
        result = await anyio.to_thread.run_sync(self.store.read_plugin, lambda db: route.get(db, path.strip("/"), query))
        return Response(200, orjson.dumps(result))

    async def _stats(self, request: Request) -> Response:
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
            self.store, interval=single.get("interval", "1h"), period=single.get("statsPeriod", "24h"),
            group_by=group_by, project_ids=projects))
        return Response(200, orjson.dumps(result))

    async def _attachments(self, project: str, event_id: str) -> list[dict[str, Any]]:
        project_id = (await anyio.to_thread.run_sync(self.store.project_by_slug, project))["id"]
        rows = await anyio.to_thread.run_sync(self.store.list_attachments, event_id)
        return [row for row in rows if row["project_id"] == project_id]

    async def _attachment(self, request: Request, project: str, event_id: str, attachment_id: int) -> Response:
        rows = await self._attachments(project, event_id)
        if attachment_id not in {row["id"] for row in rows}:
            raise NotFound(f"no attachment {attachment_id} for event {event_id}")
        meta, data = await anyio.to_thread.run_sync(self.store.attachment_data, attachment_id)
        if "download" not in dict(parse_qsl(request.query)):
            return Response(200, orjson.dumps(_attachment_to_api(meta)))
        name = meta["filename"].replace('"', "").replace("\r", "").replace("\n", "")
        return Response(200, data, [("Content-Disposition", f'attachment; filename="{name}"')],
                        content_type="application/octet-stream")

    async def _issues(self, request: Request, project: str) -> Response:
        params = dict(parse_qsl(request.query))
        try:
            limit = min(max(int(params.get("limit", "25")), 1), _MAX_LIMIT)
            offset = int(params.get("cursor", "0:0:0").split(":")[1])
        except (ValueError, IndexError) as exc:
            raise BadRequest("invalid limit or cursor") from exc
        if offset < 0:
            raise BadRequest("invalid cursor")
        issues = await anyio.to_thread.run_sync(
            lambda: self.store.list_issues(project, limit=limit + 1, offset=offset)
        )
        more = len(issues) > limit
        base = request.path
        links = [
            f'<{base}?limit={limit}&cursor=0:{max(offset - limit, 0)}:1>; rel="previous"; '
            f'results="{"true" if offset > 0 else "false"}"; cursor="0:{max(offset - limit, 0)}:1"',
            f'<{base}?limit={limit}&cursor=0:{offset + limit}:0>; rel="next"; '
            f'results="{"true" if more else "false"}"; cursor="0:{offset + limit}:0"',
        ]
        body = orjson.dumps([issue_to_api(issue) for issue in issues[:limit]])
        return Response(200, body, [("Link", ", ".join(links))])
