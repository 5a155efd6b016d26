"""The issue page's status controls end to end: ignore, resolve in next release, CSRF, the stream's filter."""

from __future__ import annotations

import pytest

from ..e2e.test_sdk import wait_for
from .test_web_e2e import csrf_of, query, send_sdk_error, sign_in, ui  # noqa: F401  (ui: the fixture)

pytestmark = pytest.mark.e2e


def status_of(db) -> tuple:
    return query(db, "SELECT status, count FROM issues")[0]


def test_ignore_and_resolve_in_next_release_forms(ui):
    server, client, db = ui
    send_sdk_error(server.dsn())
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]
    sign_in(client)
    page = client.get(f"/ui/issues/{issue_id}/").text
    for label in ("Resolve</button>", "Resolve in next release", "Ignore forever", "more events", "UTC"):
        assert label in page, label
    csrf = csrf_of(page)
    url = f"/ui/issues/{issue_id}/status"

    # Without the CSRF token nothing changes.
    for form in ({"status": "ignored", "ignore": "count", "count": "2"}, {"status": "resolvedInNextRelease"}):
        assert client.post(url, data=form).status_code == 403
    assert status_of(db) == ("unresolved", 1)

    ignored = client.post(url, data={"status": "ignored", "ignore": "count", "count": "2", "csrf_token": csrf})
    assert ignored.status_code == 303 and ignored.headers["location"] == f"/ui/issues/{issue_id}/"
    page = client.get(f"/ui/issues/{issue_id}/").text
    assert 'id="status">ignored<' in page and 'id="status-details">ignored until 2 more events<' in page
    assert "ZeroDivisionError" in client.get("/ui/projects/demo/issues/", params={"status": "ignored"}).text
    assert "ZeroDivisionError" not in client.get("/ui/projects/demo/issues/", params={"status": "unresolved"}).text
    send_sdk_error(server.dsn())
    wait_for(lambda: status_of(db) == ("ignored", 2))
    assert "ignored until 1 more event<" in client.get(f"/ui/issues/{issue_id}/").text

    resolved = client.post(url, data={"status": "resolvedInNextRelease", "csrf_token": csrf})
    assert resolved.status_code == 303
    page = client.get(f"/ui/issues/{issue_id}/").text
    assert 'id="status">resolved<' in page and "resolved in the next release (after shop@1.0)" in page
    send_sdk_error(server.dsn())  # the same release: still resolved
    wait_for(lambda: status_of(db) == ("resolved", 3))

    past = client.post(url, data={"status": "ignored", "ignore": "until", "until": "2000-01-01T00:00",
                                  "csrf_token": csrf})
    assert past.status_code == 303 and status_of(db)[0] == "ignored"
    send_sdk_error(server.dsn())
    wait_for(lambda: status_of(db) == ("unresolved", 4))
    assert query(db, "SELECT kind FROM issue_activity ORDER BY id") == [("new",), ("unignored",)]

    for form in ({"status": "ignored", "ignore": "count", "count": "many"}, {"status": "deleted"},
                 {"status": "ignored", "ignore": "until", "until": "someday"}):
        refused = client.post(url, data={**form, "csrf_token": csrf})
        assert refused.status_code == 400 and "<script" not in refused.text
    assert client.post("/ui/issues/999999/status", data={"status": "resolved", "csrf_token": csrf}).status_code == 404
    forever = client.post(url, data={"status": "ignored", "ignore": "forever", "csrf_token": csrf})
    assert forever.status_code == 303
    assert 'id="status-details">ignored forever<' in client.get(f"/ui/issues/{issue_id}/").text
