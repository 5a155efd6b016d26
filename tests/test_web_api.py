"""The web API over HTTP against the real server: Sentry's shapes, issue status changes, search, pages."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import sentry_sdk

from .api_helpers import api, next_cursor  # noqa: F401 (api: the fixture)
from .e2e.test_sdk import close_sdk, init_sdk, wait_for
from .web.test_web_e2e import query

pytestmark = pytest.mark.e2e

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")



def sdk_error(dsn: str, release: str) -> None:
    """Capture one ZeroDivisionError with the real sentry-sdk and flush it."""
    init_sdk(dsn, release=release)
    try:
        try:
            1 / 0
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
    finally:
        close_sdk()


def test_projects_issues_and_events_in_sentrys_shapes(api):
    first = api.send(release="1.0", environment="prod")
    second = api.send(release="1.1", environment="prod")
    api.send(function="other")
    other_project = api.send(project=2)
    projects = api.client.get("/api/0/projects/").json()
    assert [(p["id"], p["slug"]) for p in projects] == [("1", "demo"), ("2", "other")]
    assert projects[0]["organization"]["slug"] == "minisentry" and ISO.match(projects[0]["firstEvent"])
    assert api.client.get("/api/0/projects/acme/demo/").json()["slug"] == "demo"
    assert api.client.get("/api/0/projects/acme/nope/").status_code == 404

    issues = api.client.get("/api/0/projects/acme/demo/issues/").json()
    issue = next(i for i in issues if i["count"] == "2")
    assert {"id", "shortId", "title", "culprit", "status", "statusDetails", "count", "firstSeen", "lastSeen",
            "project", "level", "metadata", "type"} <= set(issue)
    assert issue["id"] == api.issue_of(first) and issue["shortId"] == f"DEMO-{issue['id']}"
    assert issue["project"] == {"id": "1", "slug": "demo", "name": "demo"}
    assert issue["status"] == "unresolved" and issue["statusDetails"] == {}
    assert ISO.match(issue["firstSeen"]) and ISO.match(issue["lastSeen"])
    assert issue["title"].startswith("ValueError") and issue["culprit"]

    detail = api.client.get(f"/api/0/issues/{issue['id']}/").json()
    assert {k: detail[k] for k in issue} == issue
    assert detail["firstRelease"]["version"] == "1.0" and detail["lastRelease"]["version"] == "1.1"
    assert [a["type"] for a in detail["activity"]] == ["first_seen"]
    assert api.client.get(f"/api/0/organizations/acme/issues/{issue['id']}/").json()["id"] == issue["id"]

    events = api.client.get(f"/api/0/issues/{issue['id']}/events/").json()
    assert [e["eventID"] for e in events] == [second, first]  # newest first
    assert events[0]["groupID"] == issue["id"] and events[0]["release"] == "1.1" and "entries" not in events[0]
    full = api.client.get(f"/api/0/organizations/acme/issues/{issue['id']}/events/", params={"full": "true"}).json()
    assert full[0]["entries"][0]["type"] == "exception"
    latest = api.client.get(f"/api/0/issues/{issue['id']}/events/latest/").json()
    assert latest["eventID"] == second and latest["environment"] == "prod"

    listed = api.client.get("/api/0/projects/acme/demo/events/").json()
    assert len(listed) == 3 and other_project not in {e["eventID"] for e in listed}
    one = api.client.get(f"/api/0/projects/acme/demo/events/{first}/").json()
    assert one["eventID"] == first and one["projectID"] == "1" and one["entries"]
    assert api.client.get(f"/api/0/projects/acme/demo/events/{other_project}/").status_code == 404
    assert api.client.get("/api/0/issues/999999/").status_code == 404
    assert api.client.get("/api/0/issues/999999/events/").status_code == 404
    assert api.client.put("/api/0/issues/999999/", json={"status": "resolved"}).status_code == 404
    refused = api.client.delete(f"/api/0/issues/{issue['id']}/")
    assert refused.status_code == 405 and "detail" in refused.json()
    assert api.client.post("/api/0/projects/").status_code == 405
    assert api.client.get("/api/0/nothing/here/").status_code == 404


def test_issue_and_event_lists_page_with_link_cursors(api):
    for n in range(5):
        api.send(function=f"f{n}")
    for _ in range(2):
        api.send(function="f0")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "query": ""} | ({"cursor": cursor} if cursor else {})
        response = api.client.get("/api/0/projects/acme/demo/issues/", params=params)
        assert response.status_code == 200
        seen += [issue["id"] for issue in response.json()]
        pages += 1
        cursor = next_cursor(response.headers["link"])
        assert "query=" in response.headers["link"]  # other parameters are kept
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    issue_id = api.client.get("/api/0/projects/acme/demo/issues/", params={"sort": "freq"}).json()[0]["id"]
    first = api.client.get(f"/api/0/issues/{issue_id}/events/", params={"limit": 2})
    assert len(first.json()) == 2 and next_cursor(first.headers["link"]) == "0:2:0"
    rest = api.client.get(f"/api/0/issues/{issue_id}/events/", params={"limit": 2, "cursor": "0:2:0"})
    assert len(rest.json()) == 1 and next_cursor(rest.headers["link"]) is None
    assert api.client.get("/api/0/projects/acme/demo/events/", params={"cursor": "x"}).status_code == 400


def test_put_resolved_then_a_new_sdk_event_is_a_regression(api):
    sdk_error(api.server.dsn(), "shop@1.0")
    issue_id = str(wait_for(lambda: query(api.db, "SELECT id FROM issues"))[0][0])
    response = api.put(issue_id, {"status": "resolved"})
    assert response.status_code == 200
    assert response.json()["id"] == issue_id and response.json()["status"] == "resolved"
    assert response.json()["statusDetails"] == {}
    sdk_error(api.server.dsn(), "shop@1.0")
    wait_for(lambda: api.status(issue_id) == "unresolved")
    activity = api.client.get(f"/api/0/issues/{issue_id}/").json()["activity"]
    assert [a["type"] for a in activity] == ["set_regression", "first_seen"]


def test_resolved_in_next_release_reopens_only_for_another_release(api):
    sdk_error(api.server.dsn(), "shop@1.0")
    issue_id = str(wait_for(lambda: query(api.db, "SELECT id FROM issues"))[0][0])
    response = api.put(issue_id, {"status": "resolvedInNextRelease"})
    assert response.status_code == 200
    assert response.json()["status"] == "resolved" and response.json()["statusDetails"]["inNextRelease"] is True
    sdk_error(api.server.dsn(), "shop@1.0")
    wait_for(lambda: query(api.db, "SELECT count FROM issues") == [(2,)])
    assert api.status(issue_id) == "resolved"
    sdk_error(api.server.dsn(), "shop@2.0")
    wait_for(lambda: api.status(issue_id) == "unresolved")
    # Sentry's other spelling of the same request.
    same = api.put(issue_id, {"status": "resolved", "statusDetails": {"inNextRelease": True}})
    assert same.json()["statusDetails"]["inNextRelease"] is True


def test_ignored_for_two_more_events_unignores_on_the_third(api):
    issue_id = api.issue_of(api.send())
    response = api.put(issue_id, {"status": "ignored", "statusDetails": {"ignoreCount": 2}})
    assert response.status_code == 200
    assert response.json()["status"] == "ignored" and response.json()["statusDetails"]["ignoreCount"] == 2
    api.send()
    api.send()
    assert api.status(issue_id) == "ignored"
    ignored = api.client.get("/api/0/projects/acme/demo/issues/", params={"query": "is:ignored"}).json()
    assert [i["id"] for i in ignored] == [issue_id]
    assert api.client.get("/api/0/projects/acme/demo/issues/").json() == []  # default query: is:unresolved
    api.send()
    assert api.status(issue_id) == "unresolved"
    assert query(api.db, "SELECT kind FROM issue_activity ORDER BY id") == [("new",), ("unignored",)]


def test_ignored_until_a_time_in_the_past_or_the_future(api):
    past_issue = api.issue_of(api.send(function="past"))
    future_issue = api.issue_of(api.send(function="future"))
    past = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    future = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.put(past_issue, {"status": "ignored", "statusDetails": {"ignoreUntil": past}}).status_code == 200
    response = api.put(future_issue, {"status": "ignored", "statusDetails": {"ignoreUntil": future}})
    assert response.json()["statusDetails"]["ignoreUntil"].startswith(future[:19])
    api.send(function="past")
    api.send(function="future")
    assert api.status(past_issue) == "unresolved" and api.status(future_issue) == "ignored"
    duration = api.put(past_issue, {"status": "ignored", "statusDetails": {"ignoreDuration": 30}})
    assert ISO.match(duration.json()["statusDetails"]["ignoreUntil"])


def test_bulk_update_by_ids_and_by_query(api):
    a, b, c = (api.issue_of(api.send(function=name)) for name in ("a", "b", "c"))
    other = api.issue_of(api.send(project=2))
    response = api.client.put("/api/0/projects/acme/demo/issues/", params=[("id", a), ("id", b)],
                              json={"status": "ignored", "statusDetails": {"ignoreCount": 5}})
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "statusDetails": {"ignoreCount": 5, "actor": None}}
    assert [api.status(i) for i in (a, b, c)] == ["ignored", "ignored", "unresolved"]
    # Another project's issue is not this project's: nothing matched.
    assert api.client.put("/api/0/projects/acme/demo/issues/", params={"id": other},
                          json={"status": "resolved"}).status_code == 204
    assert api.status(other) == "unresolved"
    # Without ids: the issues the query matches (by default the unresolved ones).
    assert api.client.put("/api/0/projects/acme/demo/issues/", json={"status": "resolved"}).status_code == 200
    assert [api.status(i) for i in (a, b, c, other)] == ["ignored", "ignored", "resolved", "unresolved"]
    assert api.client.put("/api/0/projects/acme/demo/issues/", params={"id": "x"},
                          json={"status": "resolved"}).status_code == 400


def test_issue_search_query_tokens(api):
    api.send(function="a", release="1.0", environment="prod", level="error")
    api.send(function="b", release="2.0", environment="staging", level="warning")
    api.send(function="c", exc_type="KeyError")

    def culprits(q: str, **params) -> set[str]:
        response = api.client.get("/api/0/projects/acme/demo/issues/", params={"query": q, **params})
        assert response.status_code == 200, response.text
        return {i["title"].split(":")[0] + "/" + i["culprit"].rsplit(" ", 1)[-1] for i in response.json()}

    assert len(culprits("")) == 3
    assert len(culprits("release:1.0")) == 1 and len(culprits("!release:1.0")) == 2
    assert len(culprits("environment:[prod,staging]")) == 2
    assert len(culprits("level:warning")) == 1
    assert {c.split("/")[0] for c in culprits("KeyError")} == {"KeyError"}
    assert len(culprits('is:unresolved release:"2.0"', statsPeriod="24h")) == 1
    assert culprits("is:resolved") == set()
    for bad in ("assigned:me", "is:nonsense", "level:", "x" * 1001):
        response = api.client.get("/api/0/projects/acme/demo/issues/", params={"query": bad})
        assert response.status_code == 400 and response.json()["detail"]
    for params in ({"statsPeriod": "forever"}, {"sort": "priority"}, {"limit": "many"}):
        assert api.client.get("/api/0/projects/acme/demo/issues/", params=params).status_code == 400


@pytest.mark.parametrize("body, detail", [
    (b"{not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"status": "deleted"}', "status must be one of"),
    (b'{"status": 3}', "status must be one of"),
    (b'{"status": "ignored", "statusDetails": {"ignoreCount": "2"}}', "ignoreCount"),
    (b'{"status": "ignored", "statusDetails": {"ignoreCount": true}}', "ignoreCount"),
    (b'{"status": "ignored", "statusDetails": {"ignoreUntil": "tomorrow"}}', "ignoreUntil"),
    (b'{"status": "resolved", "statusDetails": {"ignoreCount": 2}}', "need status ignored"),
    (b'{"status": "ignored", "statusDetails": []}', "statusDetails must be an object"),
    (b'{"status": "ignored", "statusDetails": {"ignoreWindow": 60}}', "not supported"),
    (b'{"isBookmarked": true, "status": "resolved"}', "cannot be changed"),
])
def test_bad_bodies_are_400_with_a_detail(api, body, detail):
    issue_id = api.issue_of(api.send())
    response = api.client.put(f"/api/0/issues/{issue_id}/", content=body)
    assert response.status_code == 400 and detail in response.json()["detail"]
    assert api.status(issue_id) == "unresolved"


def test_next_release_without_a_release_is_400(api):
    issue_id = api.issue_of(api.send())
    response = api.put(issue_id, {"status": "resolvedInNextRelease"})
    assert response.status_code == 400 and "release" in response.json()["detail"]
