"""Any event of an issue, fully, over real HTTP: the real server, the real sentry-sdk (its WSGI
integration for the request), navigation between events, every section, hostile values inert,
attachment downloads with safe headers, and arbitrary event JSON never answered with a 500."""

from __future__ import annotations

import html
import re
import time
import uuid
from wsgiref.util import setup_testing_defaults

import httpx
import orjson
import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

from ..conftest import KEY
from ..e2e.test_sdk import close_sdk, init_sdk, wait_for
from .test_web_e2e import XSS, query, sign_in, ui  # noqa: F401  (ui: the fixture)

pytestmark = pytest.mark.e2e

ESCAPED = html.escape(XSS)
ATTACHMENT = b"<html><script>alert(document.cookie)</script></html>\x00\xff binary tail"


def checkout_app(step: int):
    """A WSGI app whose checkout leaves breadcrumbs, names its user and contexts, then fails
    (the SDK's middleware reports it with the request; it starts each request without breadcrumbs)."""

    def checkout_view(environ, start_response):
        sentry_sdk.add_breadcrumb(category="ui.click", message=f"step {step}: pressed pay", level="info",
                                  data={"button": XSS})
        sentry_sdk.add_breadcrumb(category=XSS, message=XSS, level="warning")
        sentry_sdk.set_user({"id": f"user-{step}", "email": "ann@example.com", "username": XSS,
                             "ip_address": "10.1.2.3", "plan": "gold"})
        sentry_sdk.set_context("os", {"name": "Linux", "version": "6.1"})
        sentry_sdk.set_context("browser", {"name": "Firefox", "version": "127.0"})
        sentry_sdk.set_context("shop", {"cart": XSS, "step": step})
        cart = {"total": 10, "items": 0}
        return [str(cart["total"] / cart["items"]).encode()]

    return checkout_view


def add_body(event, hint):
    # The WSGI integration leaves body and cookies to the frameworks' request extractors; ours adds them.
    if "request" in event:
        event["request"]["data"] = {"coupon": XSS, "qty": 2}
        event["request"]["cookies"] = {"theme": "dark", "banner": XSS}
    return event


def send_checkout_failure(dsn: str, step: int, attachments: tuple[tuple[str, bytes], ...] = ()) -> str:
    """One ZeroDivisionError through the SDK's WSGI middleware, with breadcrumbs, user, contexts and
    attachments; returns its event id."""
    # data_collection: the SDK's opt-in to send user identity (the IP address) without its PII default.
    init_sdk(dsn, before_send=add_body, data_collection={"user_info": True})
    captured: list[str] = []
    try:
        scope = sentry_sdk.get_isolation_scope()
        # The middleware also sends a transaction (traces_sample_rate=1.0): only the error is ours.
        scope.add_event_processor(lambda event, hint: (event.get("type") != "transaction"
                                                       and captured.append(event["event_id"])) or event)
        for filename, data in attachments:
            scope.add_attachment(bytes=data, filename=filename, content_type="text/html")
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/checkout", "QUERY_STRING": f"step={step}&q=%3Cscript%3E",
                   "HTTP_X_SHOP_TAG": XSS, "HTTP_USER_AGENT": "Firefox/127.0"}
        setup_testing_defaults(environ)
        app = SentryWsgiMiddleware(checkout_app(step))
        with pytest.raises(ZeroDivisionError):
            app(environ, lambda status, headers: None)
    finally:
        close_sdk()
    assert len(captured) == 1
    return captured[0]


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section class="event-section" id="{section_id}">(.*?)</section>', page, re.S)
    assert match, f"no {section_id} section"
    return match.group(1)


def nav_target(page: str, key: str) -> str | None:
    match = re.search(rf'id="nav-{key}" rel="\w+" href="/ui/issues/\d+/events/([0-9a-f]{{32}})/"', page)
    return match.group(1) if match else None


def test_navigation_between_three_events_and_every_section(ui):
    server, client, db = ui
    ids = [send_checkout_failure(server.dsn(), step) for step in (1, 2, 3)]
    wait_for(lambda: query(db, "SELECT count(*) FROM events") == [(3,)], timeout=30)
    ((issue_id,),) = query(db, "SELECT DISTINCT issue_id FROM events")
    sign_in(client)

    latest = client.get(f"/ui/issues/{issue_id}/")
    assert latest.status_code == 200 and ids[2] in latest.text
    assert nav_target(latest.text, "older") == ids[1] and nav_target(latest.text, "oldest") == ids[0]
    assert nav_target(latest.text, "newer") is None and nav_target(latest.text, "newest") is None

    middle = client.get(f"/ui/issues/{issue_id}/events/{ids[1]}/")
    assert middle.status_code == 200 and "step 2: pressed pay" in middle.text
    assert nav_target(middle.text, "older") == ids[0] and nav_target(middle.text, "newer") == ids[2]
    assert nav_target(middle.text, "newest") == ids[2] and nav_target(middle.text, "oldest") == ids[0]
    oldest = client.get(f"/ui/issues/{issue_id}/events/{nav_target(middle.text, 'older')}/")
    assert "step 1: pressed pay" in oldest.text and nav_target(oldest.text, "older") is None
    # Hyphenated (UUID-shaped) ids name the same event.
    assert client.get(f"/ui/issues/{issue_id}/events/{uuid.UUID(ids[0])}/").status_code == 200

    listing = client.get(f"/ui/issues/{issue_id}/events/")
    assert listing.status_code == 200
    listed = re.findall(rf'href="/ui/issues/{issue_id}/events/([0-9a-f]{{32}})/"', listing.text)
    assert listed == ids[::-1]  # newest first
    assert "shop@1.0" in listing.text and "ann@example.com" in listing.text and "ZeroDivisionError" in listing.text
    assert client.get(f"/ui/issues/{issue_id}/events/", params={"page": "2"}).status_code == 200

    page = middle.text
    stored = orjson.loads(query(db, "SELECT data FROM events WHERE event_id = ?", ids[1])[0][0])
    crumbs = section(page, "breadcrumbs")
    assert crumbs.index("step 2: pressed pay") < crumbs.index(ESCAPED)  # time order: newest last
    assert "ui.click" in crumbs and "warning" in crumbs and html.escape('{"button":') in crumbs
    request = section(page, "request")
    assert "POST http://127.0.0.1/checkout" in request
    assert "<th>step</th><td><code>2</code>" in request and "<th>q</th><td><code>&lt;script&gt;</code>" in request
    assert ESCAPED in request and "Firefox/127.0" in request  # the X-Shop-Tag and User-Agent headers
    cookies = stored["request"].get("cookies") or {}
    assert cookies, "cookies stored (as the scrubber left them)"
    for value in (cookies.values() if isinstance(cookies, dict) else [pair[1] for pair in cookies]):
        assert html.escape(value) in request, "each cookie as stored"
    assert "coupon" in request and ESCAPED in request  # the body
    user = section(page, "user")
    assert "user-2" in user and ESCAPED in user and "gold" in user
    # Whatever the scrubber left of the email and IP address, the page shows what was stored.
    assert html.escape(stored["user"]["email"]) in user and html.escape(stored["user"]["ip_address"]) in user
    contexts = section(page, "contexts")
    assert contexts.index("Linux") < contexts.index("Firefox") < contexts.index("shop")  # os, browser, others
    assert ESCAPED in contexts
    sdk = section(page, "sdk")
    assert "sentry.python" in sdk and sentry_sdk.VERSION in sdk
    for body in (latest.text, page, oldest.text, listing.text):
        assert "<script" not in body.lower()


def test_attachments_download_exactly_with_safe_headers_and_only_signed_in(ui):
    server, client, db = ui
    event_id = send_checkout_failure(server.dsn(), 1, attachments=(
        (f"../{XSS}.html", ATTACHMENT), ("résumé 2024.txt", b"plain text\n")))
    other = send_other_error(server.dsn())
    wait_for(lambda: query(db, "SELECT count(*) FROM attachments") == [(2,)], timeout=30)
    wait_for(lambda: query(db, "SELECT count(*) FROM events") == [(2,)], timeout=30)
    issue_id = query(db, "SELECT issue_id FROM events WHERE event_id = ?", event_id)[0][0]

    anonymous = httpx.get(f"{server.url}/ui/attachments/1/")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"
    sign_in(client)
    page = client.get(f"/ui/issues/{issue_id}/events/{event_id}/").text
    attachments = section(page, "attachments")
    assert "<script" not in page.lower() and ESCAPED in attachments
    links = dict((html.unescape(name), int(aid)) for aid, name in
                 re.findall(r'<a href="/ui/attachments/(\d+)/" download>([^<]*)</a>', attachments))
    assert set(links) == {f"../{XSS}.html", "résumé 2024.txt"}

    download = client.get(f"/ui/attachments/{links[f'../{XSS}.html']}/")
    assert download.status_code == 200 and download.content == ATTACHMENT
    assert download.headers["content-type"] == "application/octet-stream"  # never the uploaded text/html
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in download.headers["content-security-policy"]
    assert download.headers["x-frame-options"] == "DENY"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and "/" not in disposition and "\\" not in disposition
    assert disposition.count('"') == 2
    text = client.get(f"/ui/attachments/{links['résumé 2024.txt']}/")
    assert text.content == b"plain text\n"
    assert text.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ 2024.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt")
    assert client.get("/ui/attachments/999999/").status_code == 404
    assert client.post("/ui/attachments/1/", data={}).status_code == 403  # no CSRF token

    # An event of another issue is not this issue's: 404, as an unknown one.
    assert client.get(f"/ui/issues/{issue_id}/events/{other}/").status_code == 404
    assert client.get(f"/ui/issues/{issue_id}/events/{uuid.uuid4().hex}/").status_code == 404
    assert client.get(f"/ui/issues/999999/events/{event_id}/").status_code == 404


def send_other_error(dsn: str) -> str:
    init_sdk(dsn)
    try:
        try:
            {}["missing"]
        except KeyError:
            return sentry_sdk.capture_exception()
    finally:
        close_sdk()


# Arbitrary JSON, nested: what a broken or hostile SDK could put where objects are expected.
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)
_EVENT_PARTS = st.fixed_dictionaries({}, optional={
    key: _JSON for key in ("breadcrumbs", "request", "contexts", "user", "sdk", "extra", "tags", "logentry",
                           "exception", "threads", "message", "release", "environment", "platform")})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=_EVENT_PARTS)
def test_arbitrary_event_json_never_makes_the_pages_fail(ui, parts):
    server, client, db = ui
    if not client.cookies.get("minisentry_session"):
        sign_in(client)
    event_id = uuid.uuid4().hex
    body = {**parts, "event_id": event_id, "timestamp": time.time(), "level": "error"}
    response = httpx.post(f"{server.url}/api/1/store/", content=orjson.dumps(body),
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7",
                                   "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    rows = wait_for(lambda: query(db, "SELECT issue_id FROM events WHERE event_id = ?", event_id), timeout=30)
    issue_id = rows[0][0]
    for path in (f"/ui/issues/{issue_id}/", f"/ui/issues/{issue_id}/events/{event_id}/",
                 f"/ui/issues/{issue_id}/events/"):
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[-500:])
