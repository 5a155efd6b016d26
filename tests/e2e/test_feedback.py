"""User reports and feedback sent through the real sentry-sdk transport, linked to their issue."""

from __future__ import annotations

import json
import uuid

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def send(item_type: str, payload: dict, event_id: str | None = None) -> None:
    headers = {"event_id": event_id} if event_id else {}
    envelope = Envelope(headers=headers)
    envelope.add_item(Item(payload=PayloadRef(json=payload), type=item_type))
    sentry_sdk.get_client().transport.capture_envelope(envelope)


def test_user_report_and_feedback_link_to_the_issue(server_factory):
    server = server_factory()
    init_sdk(server.dsn())
    try:
        raise KeyError("cart")
    except KeyError:
        event_id = sentry_sdk.capture_exception()
    send("user_report", {"event_id": event_id, "name": "Ada", "email": "ada@example.com", "comments": "it broke"})
    feedback_id = uuid.uuid4().hex
    send("feedback", {"event_id": feedback_id, "contexts": {"feedback": {
        "message": "checkout is slow", "contact_email": "bob@example.com", "name": "Bob",
        "associated_event_id": event_id, "url": "https://shop.example/checkout"}}}, event_id=feedback_id)
    send("user_report", {"name": "nobody"})  # no event id: refused with an outcome
    close_sdk()

    def rows():
        result = cli(server.config_path, "feedback", "--json")
        data = json.loads(result.stdout or "[]")
        return data if len(data) == 2 else None

    reports = {row["kind"]: row for row in wait_for(rows, timeout=30)}
    issues = json.loads(cli(server.config_path, "issues", "--json").stdout)
    assert reports["user_report"]["message"] == "it broke" and reports["user_report"]["name"] == "Ada"
    assert reports["feedback"]["email"] == "bob@example.com"
    assert reports["user_report"]["issue_id"] == reports["feedback"]["issue_id"] == issues[0]["id"]
    text = cli(server.config_path, "feedback").stdout
    assert f"issue #{issues[0]['id']}" in text and "checkout is slow" in text
    outcomes = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
    assert any(o["reason"] == "invalid_user_report" for o in outcomes)
    assert any(o["outcome"] == "accepted" and o["category"] == "user_report_v2" for o in outcomes)
