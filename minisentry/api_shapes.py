"""Sentry's JSON shapes for ``/api/0/``: issues, events, projects, attachments, and cursor pagination.

Pure functions from store rows to dicts (and the ``Link`` header); nothing blocks. The paging
helpers raise BadRequest (400) for a malformed ``limit`` or ``cursor``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from .errors import BadRequest
from .issue_status import details_to_api, iso

__all__ = ["iso", "issue_to_api", "issue_detail_to_api", "event_to_api", "attachment_to_api", "project_to_api",
           "page_params", "link_header", "query_pairs", "ACTIVITY_TYPES"]

_MAX_LIMIT = 100
#: Our activity kinds as Sentry's activity ``type`` names.
ACTIVITY_TYPES = {"new": "first_seen", "regression": "set_regression", "unignored": "set_unresolved"}


def issue_to_api(issue: dict[str, Any]) -> dict[str, Any]:
    """Render a stored issue with Sentry's field names (``count`` is a string, as in Sentry)."""
    metadata = issue.get("metadata") or {}
    return {
        "id": str(issue["id"]),
        "shortId": f"{issue['project'].upper()}-{issue['id']}",
        "title": issue["title"],
        "culprit": issue["culprit"],
        "level": issue["level"],
        "status": issue["status"],
        "statusDetails": details_to_api(issue["status"], issue.get("status_details") or {}),
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
        "firstSeen": iso(issue["first_seen"]),
        "lastSeen": iso(issue["last_seen"]),
    }


def _release(version: str | None) -> dict[str, Any] | None:
    return {"version": version, "shortVersion": version} if version else None


def issue_detail_to_api(issue: dict[str, Any], releases: tuple[str | None, str | None],
                        activity: list[dict[str, Any]]) -> dict[str, Any]:
    """An issue as ``GET /api/0/issues/<id>/`` renders it: the list shape plus first/last release and activity."""
    return {
        **issue_to_api(issue),
        "firstRelease": _release(releases[0]),
        "lastRelease": _release(releases[1]),
        "activity": [{"id": str(row["id"]), "type": ACTIVITY_TYPES.get(row["kind"], row["kind"]),
                      "data": {"eventId": row["event_id"]} if row["event_id"] else {},
                      "dateCreated": iso(row["created"]), "user": None} for row in activity],
        "tags": [],
        "participants": [],
        "seenBy": [],
        "userReportCount": 0,
    }


def event_to_api(event: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
    """Render a stored event with Sentry's field names (``entries`` for the interfaces, only when ``full``)."""
    data = event["data"]
    tags = data.get("tags") or []
    result = {
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
        "dateCreated": iso(data.get("timestamp")),
        "dateReceived": iso(data.get("received")),
        "release": data.get("release"),
        "environment": data.get("environment"),
        "tags": [{"key": k, "value": v} for k, v in (pair for pair in tags if isinstance(pair, list) and len(pair) == 2)
                 if isinstance(k, str)] if isinstance(tags, list) else [],
        "user": data.get("user"),
    }
    if not full:
        return result
    entries = []
    for name in ("exception", "threads", "stacktrace", "breadcrumbs", "request", "logentry"):
        if data.get(name):
            entries.append({"type": "message" if name == "logentry" else name, "data": data[name]})
    return {**result, "contexts": data.get("contexts", {}), "sdk": data.get("sdk"),
            "fingerprints": data.get("fingerprint", []), "entries": entries}


def attachment_to_api(row: dict[str, Any]) -> dict[str, Any]:
    """Render an attachment's metadata with Sentry's field names."""
    return {"id": str(row["id"]), "name": row["filename"], "mimetype": row["content_type"],
            "type": row["attachment_type"], "size": row["size"], "event_id": row["event_id"]}


def project_to_api(project: dict[str, Any], organization: str, first_event: float | None) -> dict[str, Any]:
    """Render a project as Sentry's project list and detail do (the one organization is ``organization``)."""
    return {
        "id": str(project["id"]),
        "slug": project["slug"],
        "name": project["slug"],
        "platform": None,
        "dateCreated": iso(project.get("created")),
        "firstEvent": iso(first_event),
        "hasAccess": True,
        "isMember": True,
        "isBookmarked": False,
        "status": "active",
        "features": [],
        "organization": {"id": "1", "slug": organization, "name": organization},
    }


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query string's ``(name, value)`` pairs, blank values kept (``query=`` differs from no
    ``query``). Raises BadRequest past 1000 fields."""
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:
        raise BadRequest("too many query parameters") from exc


def page_params(query: str) -> tuple[int, int]:
    """``(limit, offset)`` from ``?limit=`` (1..100, default 25) and ``?cursor=0:<offset>:<is_prev>``.

    Raises BadRequest for a limit or cursor that is not numbers, or a negative offset."""
    params = dict(query_pairs(query))
    try:
        limit = min(max(int(params.get("limit", "25")), 1), _MAX_LIMIT)
        offset = int(params.get("cursor", "0:0:0").split(":")[1])
    except (ValueError, IndexError) as exc:
        raise BadRequest("invalid limit or cursor") from exc
    if not 0 <= offset <= 10**12:
        raise BadRequest("invalid cursor")
    return limit, offset


def link_header(path: str, query: str, limit: int, offset: int, more: bool) -> str:
    """Sentry's ``Link`` header (previous and next, with ``results`` and ``cursor``), keeping the
    request's other parameters."""
    kept = [(name, value) for name, value in query_pairs(query) if name not in ("cursor", "limit")]
    previous, following = max(offset - limit, 0), offset + limit

    def link(cursor: str, rel: str, results: bool) -> str:
        url = f"{path}?{urlencode([*kept, ('limit', str(limit)), ('cursor', cursor)], safe=':')}"
        return f'<{url}>; rel="{rel}"; results="{"true" if results else "false"}"; cursor="{cursor}"'

    return ", ".join([link(f"0:{previous}:1", "previous", offset > 0), link(f"0:{following}:0", "next", more)])
