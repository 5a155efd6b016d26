"""Payload shapes (webhook, Slack, email), rule matching and the rate limiter with its suppressed note."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minisentry.alert_model import (alert_from_activity, alert_from_monitor_failure, email_body, email_subject,
                                    slack_escape, slack_payload, webhook_payload)
from minisentry.alert_rules import RateLimiter, RuleSet, rule_matches
from minisentry.config_alerts import AlertRule

ROW = {"id": 7, "issue_id": 42, "project_id": 1, "kind": "new", "event_id": "ab" * 16, "created": 1_700_000_000.0,
       "title": "ValueError: <script>&'boom'", "culprit": "app.views in handler", "level": "warning", "count": 3,
       "status": "unresolved", "first_seen": 1_700_000_000.0, "last_seen": 1_700_000_100.0, "slug": "demo"}
FAILURE = {"id": 3, "project_id": 1, "monitor_slug": "nightly", "check_in_id": "c" * 32, "status": "missed",
           "environment": "production", "created": 1_700_000_000.0, "slug": "demo",
           "schedule": '{"type": "crontab", "value": "0 3 * * *"}'}


def test_webhook_payload_is_shaped_like_sentrys_issue_alert():
    payload = webhook_payload(alert_from_activity(ROW, "https://sentry.example/").for_rule("ops", 0))
    assert payload["action"] == "created" and payload["kind"] == "new_issue" and payload["rule"] == "ops"
    issue = payload["data"]["issue"]
    assert issue == {**issue, "id": "42", "shortId": "DEMO-42", "title": ROW["title"], "culprit": ROW["culprit"],
                     "level": "warning", "status": "unresolved", "count": "3", "firstSeen": "2023-11-14T22:13:20Z",
                     "url": "https://sentry.example/ui/issues/42/", "project": {"id": "1", "slug": "demo"}}
    assert payload["id"] == "issue-activity-7" and payload["suppressed"] == 0
    regression = webhook_payload(alert_from_activity({**ROW, "kind": "regression"}, ""))
    assert regression["action"] == "regression" and regression["data"]["issue"]["url"] is None


def test_monitor_failure_payload():
    payload = webhook_payload(alert_from_monitor_failure(FAILURE))
    monitor = payload["data"]["monitor"]
    assert payload["action"] == "monitor_failed" and monitor["slug"] == "nightly" and monitor["status"] == "missed"
    assert monitor["schedule"] == {"type": "crontab", "value": "0 3 * * *"}
    assert email_subject(alert_from_monitor_failure(FAILURE)) == \
        "[minisentry] Cron monitor failed in demo: nightly: check-in missed"


def test_slack_payload_escapes_user_text():
    payload = slack_payload(alert_from_activity(ROW, "https://sentry.example").for_rule("ops", 4))
    section = payload["blocks"][0]["text"]["text"]
    assert payload["text"] == "New issue in demo: ValueError: &lt;script&gt;&amp;'boom'"
    assert section == "*New issue in demo*\n<https://sentry.example/ui/issues/42/|ValueError: &lt;script&gt;&amp;'boom'>"
    texts = [element["text"] for element in payload["blocks"][1]["elements"]]
    assert texts[0] == "project demo" and texts[-1] == "4 earlier alerts suppressed by the rate limit"


@given(st.text())
def test_slack_escape_leaves_no_control_characters(text):
    escaped = slack_escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_email_subject_and_body():
    alert = alert_from_activity({**ROW, "title": "KeyError: 'x'\r\nBcc: victim@example.com"}, "https://s.example")
    subject = email_subject(alert)
    assert subject == "[minisentry] New issue in demo: KeyError: 'x' Bcc: victim@example.com"
    body = email_body(alert.for_rule("ops", 2))
    assert "https://s.example/ui/issues/42/" in body and "2 earlier alerts of rule 'ops' were suppressed" in body


def test_rule_matching():
    alert = alert_from_activity(ROW, "")  # level warning, project demo
    rule = AlertRule(name="r", on=["new_issue"], targets=[{"type": "webhook", "url": "https://x/"}])
    assert rule_matches(rule, alert)
    assert not rule_matches(AlertRule(**{**rule.__dict__, "on": ["regression"]}), alert)
    assert not rule_matches(AlertRule(**{**rule.__dict__, "projects": ["other"]}), alert)
    assert not rule_matches(AlertRule(**{**rule.__dict__, "min_level": "error"}), alert)
    assert rule_matches(AlertRule(**{**rule.__dict__, "min_level": "info"}), alert)
    monitor = AlertRule(**{**rule.__dict__, "on": ["monitor_failed"], "min_level": "fatal"})
    assert rule_matches(monitor, alert_from_monitor_failure(FAILURE))  # failures have no level


def test_the_rate_limit_window_and_the_suppressed_count_on_the_next_alert():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.take(), limiter.take(), limiter.take(), limiter.take()] == [0, 0, None, None]
    now[0] = 3599.0
    assert limiter.take() is None
    now[0] = 3600.0  # both sends left the window
    assert [limiter.take(), limiter.take(), limiter.take()] == [3, 0, None] and limiter.pending_suppressed == 1


def test_a_rule_set_routes_to_every_target_and_counts_suppressed():
    now = [0.0]
    targets = [{"type": "webhook", "url": "https://a/"}, {"type": "slack", "url": "https://b/"}]
    rules = RuleSet([AlertRule(name="r", on=["new_issue"], targets=targets, max_per_hour=1)], clock=lambda: now[0])
    alert = alert_from_activity(ROW, "")
    assert [target["type"] for _, target in rules.route(alert)] == ["webhook", "slack"]
    assert rules.route(alert) == [] and rules.suppressed == 1
    now[0] = 4000.0
    (first, _), _ = rules.route(alert)
    assert first.suppressed == 1 and webhook_payload(first)["suppressed"] == 1
