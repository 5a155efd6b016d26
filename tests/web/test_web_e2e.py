"""The web UI end to end: the real server, real HTTP, the real sentry-sdk, the real CLI creating a user."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sentry_sdk

from ..conftest import KEY
from ..e2e.test_sdk import close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e

EMAIL = "admin@example.com"
PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"


def create_user(config: Path, email: str = EMAIL, password: str = PASSWORD) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minisentry", "--config", str(config), "users", "create", email,
                           "--password-stdin"], input=password + "\n", capture_output=True, text=True, timeout=60)


def query(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(client: httpx.Client, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/ui/login")
    assert form.status_code == 200
    return client.post("/ui/login", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)})


@pytest.fixture
def ui(tmp_path, server_factory):
    """A running server with one user; yields (server, client, store path)."""
    server = server_factory()
    result = create_user(server.config_path)
    assert result.returncode == 0, result.stderr
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        yield server, client, tmp_path / "store.sqlite"


def raise_in_checkout(cart):
    total = cart["total"]
    return total / cart["items"]


def send_sdk_error(dsn: str) -> None:
    init_sdk(dsn, include_local_variables=True)
    try:
        try:
            raise_in_checkout({"total": 10, "items": 0})
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
    finally:
        close_sdk()


def test_pages_redirect_to_login_without_a_session(ui):
    _, client, _ = ui
    for path in ("/", "/ui/", "/ui/projects/demo/issues/", "/ui/issues/1/"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] in ("/ui/", "/ui/login")
    forged = client.get("/ui/", headers={"Cookie": "minisentry_session=forged"})
    assert forged.headers["location"] == "/ui/login"


def test_sign_in_sets_a_hardened_cookie_and_stores_only_hashes(ui):
    server, client, db = ui
    assert sign_in(client, password="wrong password").status_code == 403
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    cookie = next(value for name, value in response.headers.multi_items()
                  if name == "set-cookie" and value.startswith("minisentry_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    page = client.get("/ui/")
    assert page.status_code == 200
    assert f"http://{KEY}@127.0.0.1:{server.port}/1" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Only hashes are stored: the password's scrypt hash, the session token's SHA-256.
    ((password_hash,),) = query(db, "SELECT password_hash FROM users WHERE email = ?", EMAIL)
    assert password_hash.startswith("scrypt$") and PASSWORD not in password_hash
    hashes = [row[0] for row in query(db, "SELECT token_hash FROM web_sessions")]
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in str(query(db, "SELECT * FROM web_sessions"))
    # Sign-out ends the session server-side: the old cookie no longer works.
    assert client.post("/ui/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    client.cookies.set("minisentry_session", token)
    assert client.get("/ui/").headers["location"] == "/ui/login"
    assert query(db, "SELECT count(*) FROM web_sessions") == [(0,)]


def test_posts_without_the_right_csrf_token_are_refused(ui):
    server, client, db = ui
    form = client.get("/ui/login")
    refused = client.post("/ui/login", data={"email": EMAIL, "password": PASSWORD})
    assert refused.status_code == 403
    refused = client.post("/ui/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "x" + csrf_of(form.text)})
    assert refused.status_code == 403
    assert sign_in(client).status_code == 303
    send_sdk_error(server.dsn())
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]
    for data in ({"status": "resolved"}, {"status": "resolved", "csrf_token": "0" * 64}):
        assert client.post(f"/ui/issues/{issue_id}/status", data=data).status_code == 403
    assert client.post("/ui/logout", data={}).status_code == 403
    assert query(db, "SELECT status FROM issues") == [("unresolved",)]
    # Not signed in at all: refused too.
    anonymous = httpx.post(f"{server.url}/ui/issues/{issue_id}/status", data={"status": "resolved"})
    assert anonymous.status_code == 403


def test_issue_page_shows_the_stack_trace_and_resolve_reopens_on_a_new_event(ui):
    server, client, db = ui
    send_sdk_error(server.dsn())
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]
    sign_in(client)
    stream = client.get("/ui/projects/demo/issues/")
    assert stream.status_code == 200 and "ZeroDivisionError" in stream.text
    assert "ZeroDivisionError" not in client.get("/ui/projects/demo/issues/", params={"query": "nomatch"}).text
    assert "ZeroDivisionError" not in client.get("/ui/projects/demo/issues/", params={"status": "resolved"}).text
    assert "ZeroDivisionError" in client.get("/ui/projects/demo/issues/", params={"level": "error", "sort": "count"}).text
    page = client.get(f"/ui/issues/{issue_id}/")
    assert page.status_code == 200
    assert "raise_in_checkout" in page.text and "test_web_e2e.py" in page.text
    assert 'class="frame in-app"' in page.text
    assert "return total / cart[&quot;items&quot;]" in page.text  # the context line, escaped
    assert "Local variables" in page.text and "cart" in page.text
    resolved = client.post(f"/ui/issues/{issue_id}/status", data={"status": "resolved", "csrf_token": csrf_of(page.text)})
    assert resolved.status_code == 303
    assert query(db, "SELECT status FROM issues") == [("resolved",)]
    assert 'id="status">resolved<' in client.get(f"/ui/issues/{issue_id}/").text
    send_sdk_error(server.dsn())
    wait_for(lambda: query(db, "SELECT status, count FROM issues") == [("unresolved", 2)])
    assert 'id="status">unresolved<' in client.get(f"/ui/issues/{issue_id}/").text


def test_hostile_event_content_is_rendered_inert(ui):
    server, client, db = ui
    event = {
        "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
        "message": XSS, "extra": {"payload": XSS}, "tags": {"t": XSS},
        "exception": {"values": [{"type": "ValueError", "value": XSS, "stacktrace": {"frames": [
            {"filename": XSS, "function": XSS, "lineno": 3, "context_line": XSS, "in_app": True,
             "vars": {"v": XSS}}]}}]},
    }
    response = httpx.post(f"{server.url}/api/1/store/", json=event,
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})
    assert response.status_code == 200, response.text
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]
    sign_in(client)
    for path in ("/ui/projects/demo/issues/", f"/ui/issues/{issue_id}/"):
        body = client.get(path).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, path
        assert "<script" not in body.lower(), path


def test_the_ui_can_be_disabled(tmp_path, server_factory):
    from ..conftest import base_config

    server = server_factory(base_config(tmp_path, web={"enabled": False}))
    assert httpx.get(f"{server.url}/ui/login").status_code == 404
    assert httpx.get(f"{server.url}/api/relay/healthcheck/live/").status_code == 200


def test_failed_sign_ins_are_rate_limited_per_account_and_per_address(tmp_path, server_factory):
    from ..conftest import base_config

    server = server_factory(base_config(tmp_path, web={"login_attempts": 3, "login_address_attempts": 7}))
    assert create_user(server.config_path).returncode == 0
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        # A success clears the account's count: two failures, a success, two more are still allowed.
        for _ in range(2):
            assert sign_in(client, password="wrong password!").status_code == 403
        assert sign_in(client).status_code == 303
        for _ in range(2):
            assert sign_in(client, password="wrong password!").status_code == 403
        assert sign_in(client, password="wrong password!").status_code == 403  # the third in the window
        # Locked: even the right password is not checked, and the answer says when to come back.
        locked = sign_in(client)
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= 900
        assert "Too many failed sign-ins" in locked.text and "set-cookie" in locked.headers
        assert "minisentry_session" not in locked.headers.get("set-cookie", "")
        # Another account from the same address (5 failures so far): allowed until the address's 7th.
        for _ in range(2):
            assert sign_in(client, email="nobody@example.com", password="wrong password!").status_code == 403
        assert sign_in(client, email="nobody@example.com", password="wrong password!").status_code == 429
    assert server.proc.poll() is None
