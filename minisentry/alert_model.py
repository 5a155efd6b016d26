"""What an alert says, and how it is written for each kind of target.

An :class:`Alert` is built from one row of the issue activity log or the monitor-failure log (see
``backends/sqlite_activity.py``, ``backends/sqlite_alerts.py``). The three renderings here are pure
functions (no I/O, never raise for any stored text):

- :func:`webhook_payload`: JSON shaped like Sentry's issue-alert webhook as far as we have the data
  (``action``, ``data.issue`` with ``id``, ``shortId``, ``title``, ``culprit``, ``level``, ...).
- :func:`slack_payload`: ``{"text", "blocks"}`` for a Slack incoming webhook (or Mattermost, or
  anything Slack-compatible); user-controlled text is escaped for mrkdwn.
- :func:`email_subject` / :func:`email_body`: plain text.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from typing import Any

import orjson

__all__ = ["Alert", "alert_from_activity", "alert_from_monitor_failure", "webhook_payload", "slack_payload",
           "email_subject", "email_body", "slack_escape"]

_ACTIONS = {"new_issue": "created", "regression": "regression", "unignored": "unignored",
            "monitor_failed": "monitor_failed"}
_HEADLINES = {"new_issue": "New issue", "regression": "Regression", "unignored": "Issue unignored",
              "monitor_failed": "Cron monitor failed"}
#: Activity log kinds -> alert kinds. A kind without an entry becomes an alert kind no rule can name.
_ACTIVITY_KINDS = {"new": "new_issue", "regression": "regression", "unignored": "unignored"}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: ``kind`` is ``new_issue``, ``regression``, ``unignored`` or ``monitor_failed``.

    ``id`` is stable for the log row (``issue-activity-<row id>``, ``monitor-failure-<row id>``), so a
    receiver can drop the duplicate an at-least-once redelivery after a crash may bring. ``issue``
    and ``monitor`` hold the fields of the payloads; ``rule`` and ``suppressed`` are set per rule.
    """

    id: str
    kind: str
    project_id: int
    project: str
    title: str
    level: str | None
    created: float
    url: str | None = None
    issue: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    rule: str = ""
    #: Alerts of this rule the rate limit dropped since its previous sent alert.
    suppressed: int = 0

    def for_rule(self, rule: str, suppressed: int) -> "Alert":
        """A copy naming the rule that sends it and the alerts that rule suppressed before it."""
        return replace(self, rule=rule, suppressed=suppressed)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def alert_from_activity(row: dict[str, Any], base_url: str) -> Alert:
    """An alert for an ``activity_after`` row (``new``, ``regression``, ``unignored``); links under ``base_url``."""
    kind = _ACTIVITY_KINDS.get(row["kind"], f"activity:{row['kind']}")
    url = f"{base_url.rstrip('/')}/ui/issues/{row['issue_id']}/" if base_url else None
    issue = {
        "id": str(row["issue_id"]),
        "shortId": f"{str(row['slug']).upper()}-{row['issue_id']}",
        "title": row["title"] or "",
        "culprit": row["culprit"] or "",
        "level": row["level"],
        "status": row["status"],
        "count": str(row["count"]),
        "firstSeen": _iso(row["first_seen"]),
        "lastSeen": _iso(row["last_seen"]),
        "project": {"id": str(row["project_id"]), "slug": row["slug"]},
        "url": url,
        "web_url": url,
        "event_id": row.get("event_id"),
    }
    return Alert(id=f"issue-activity-{row['id']}", kind=kind, project_id=row["project_id"], project=row["slug"],
                 title=row["title"] or "", level=row["level"], created=row["created"], url=url, issue=issue)


def alert_from_monitor_failure(row: dict[str, Any]) -> Alert:
    """An alert for a ``monitor_failures_after`` row (a check-in ``error``, ``missed`` or ``timeout``)."""
    try:
        schedule = orjson.loads(row["schedule"]) if row.get("schedule") else None
    except orjson.JSONDecodeError:
        schedule = None
    monitor = {
        "slug": row["monitor_slug"],
        "status": row["status"],
        "checkInId": row["check_in_id"],
        "environment": row.get("environment"),
        "schedule": schedule,
        "dateCreated": _iso(row["created"]),
        "project": {"id": str(row["project_id"]), "slug": row["slug"]},
    }
    title = f"{row['monitor_slug']}: check-in {row['status']}"
    return Alert(id=f"monitor-failure-{row['id']}", kind="monitor_failed", project_id=row["project_id"],
                 project=row["slug"], title=title, level=None, created=row["created"], monitor=monitor)


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook's JSON body (a dict for orjson)."""
    data: dict[str, Any] = {"issue": alert.issue} if alert.issue is not None else {"monitor": alert.monitor}
    return {"action": _ACTIONS[alert.kind], "kind": alert.kind, "id": alert.id, "rule": alert.rule,
            "project": alert.project, "suppressed": alert.suppressed, "data": data, "url": alert.url,
            "message": email_subject(alert).removeprefix("[minisentry] ")}


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` (in that order): Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _details(alert: Alert) -> list[str]:
    if alert.issue is not None:
        issue = alert.issue
        return [f"project {alert.project}", f"level {issue['level']}", f"{issue['count']} events",
                f"first seen {issue['firstSeen']}", f"culprit {issue['culprit'] or '-'}"]
    monitor = alert.monitor or {}
    return [f"project {alert.project}", f"monitor {monitor.get('slug')}", f"status {monitor.get('status')}",
            f"environment {monitor.get('environment')}", f"at {monitor.get('dateCreated')}"]


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body: a plain ``text`` fallback and ``blocks``."""
    headline = f"{_HEADLINES[alert.kind]} in {alert.project}"
    title = slack_escape(_one_line(alert.title, 300))
    linked = f"<{slack_escape(alert.url)}|{title.replace('|', '¦')}>" if alert.url else title
    context = [{"type": "mrkdwn", "text": slack_escape(part)} for part in _details(alert)[:4]]
    if alert.suppressed:
        context.append({"type": "mrkdwn", "text": f"{alert.suppressed} earlier alerts suppressed by the rate limit"})
    return {
        "text": f"{headline}: {title}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{slack_escape(headline)}*\n{linked}"}},
            {"type": "context", "elements": context},
        ],
    }


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def email_subject(alert: Alert) -> str:
    """``[minisentry] New issue in <project>: <title>`` on one line (no header injection), at most ~250 chars."""
    return f"[minisentry] {_HEADLINES[alert.kind]} in {_one_line(alert.project, 50)}: {_one_line(alert.title, 180)}"


def email_body(alert: Alert) -> str:
    """The plain-text body of an alert email."""
    lines = [f"{_HEADLINES[alert.kind]} in project {alert.project}", "", alert.title, ""]
    lines += [f"  {part}" for part in _details(alert)]
    if alert.url:
        lines += ["", alert.url]
    if alert.suppressed:
        lines += ["", f"{alert.suppressed} earlier alerts of rule {alert.rule!r} were suppressed by its rate limit."]
    lines += ["", f"-- minisentry alert rule {alert.rule!r} (alert id {alert.id})"]
    return "\n".join(lines) + "\n"
