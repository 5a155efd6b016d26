"""Browser security reports (CSP violations) as events, the way Sentry files them.

Browsers post reports to ``/api/<project_id>/security/?sentry_key=…`` (also ``/csp-report/``), either
the classic ``{"csp-report": {...}}`` body or Reporting API lists of ``csp-violation`` reports. Each
becomes an event with the ``csp`` interface, a readable message ("Blocked 'script' from
'evil.example'") and a fingerprint of directive and blocked host, so one kind of violation is one
issue.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import BadRequest

__all__ = ["csp_events", "MAX_REPORTS"]

#: Reports in one Reporting API body beyond this are refused.
MAX_REPORTS = 100

_KINDS = {"script": "script", "style": "style", "img": "image", "font": "font", "connect": "connection",
          "media": "media", "frame": "frame", "object": "plugin", "worker": "worker", "child": "frame",
          "manifest": "manifest", "default": "resource"}


def _text(value: Any) -> str | None:
    return value[:1024] if isinstance(value, str) and value else None


def _blocked_host(blocked: str | None) -> str:
    if not blocked:
        return "self"
    if blocked in ("inline", "eval", "self", "data", "blob"):
        return blocked
    try:
        return urlsplit(blocked).netloc or blocked.split(":", 1)[0]
    except ValueError:
        return blocked


def _event(report: dict[str, Any], user_agent: str | None) -> dict[str, Any]:
    directive = _text(report.get("effective-directive")) or _text(report.get("violated-directive")) or "default-src"
    directive = directive.split()[0]
    blocked = _text(report.get("blocked-uri"))
    host = _blocked_host(blocked)
    kind = _KINDS.get(directive.split("-", 1)[0], "resource")
    csp = {"effective_directive": directive, "blocked_uri": blocked, "document_uri": _text(report.get("document-uri")),
           "violated_directive": _text(report.get("violated-directive")), "original_policy":
           _text(report.get("original-policy")), "referrer": _text(report.get("referrer")),
           "source_file": _text(report.get("source-file")), "disposition": _text(report.get("disposition"))}
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "level": "error",
        "logger": "csp",
        "platform": "javascript",
        "logentry": {"formatted": f"Blocked '{kind}' from '{host}'"},
        "csp": {key: value for key, value in csp.items() if value is not None},
        "fingerprint": ["csp", directive, host],
        "tags": [["effective-directive", directive], ["blocked-uri", host]],
    }
    if csp["document_uri"]:
        event["request"] = {"url": csp["document_uri"]}
    if user_agent:
        event.setdefault("request", {})["headers"] = [["User-Agent", user_agent[:512]]]
    return event


def _from_reporting_api(entry: Any) -> dict[str, Any] | None:
    # Reporting API: {"type": "csp-violation", "body": {"documentURL", "blockedURL", "effectiveDirective", ...}}
    if not isinstance(entry, dict) or entry.get("type") != "csp-violation" or not isinstance(entry.get("body"), dict):
        return None
    body = entry["body"]
    return {"document-uri": body.get("documentURL"), "blocked-uri": body.get("blockedURL"),
            "effective-directive": body.get("effectiveDirective"), "original-policy": body.get("originalPolicy"),
            "referrer": body.get("referrer"), "source-file": body.get("sourceFile"),
            "disposition": body.get("disposition")}


def csp_events(body: bytes, user_agent: str | None) -> list[dict[str, Any]]:
    """Turn a report body into events. Never blocks. Raises BadRequest for anything but CSP reports."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"security report is not JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("csp-report"), dict):
        reports = [data["csp-report"]]
    elif isinstance(data, list):
        if len(data) > MAX_REPORTS:
            raise BadRequest(f"more than {MAX_REPORTS} reports in one request")
        reports = [report for report in map(_from_reporting_api, data) if report is not None]
        if not reports:
            raise BadRequest("no csp-violation report in the body")
    else:
        raise BadRequest("unsupported security report: expected a CSP report")
    return [_event(report, user_agent) for report in reports]
