"""The issue page's chart and tag breakdown, the stream's release/environment filters and the SDK
snippets: the real server, a SQLite file on disk, events from the real sentry-sdk, pages over HTTP."""

from __future__ import annotations

import html
import re
import time
import uuid

import httpx
import pytest
import sentry_sdk

from ..conftest import KEY
from ..e2e.test_sdk import close_sdk, init_sdk, wait_for
from .test_web_e2e import XSS, query, sign_in, ui  # noqa: F401  (ui: the fixture)

pytestmark = pytest.mark.e2e


def fail_in_payment():
    amount = 10
    return amount / 0


def fail_in_shipping():
    parcel: dict = {}
    return parcel["weight"]


def send_errors(dsn: str, tags: list[dict[str, str]], *, release: str = "shop@1.0", environment: str = "test",
                fail=fail_in_payment) -> None:
    """One captured exception per entry of ``tags`` (all from the same line: one issue)."""
    init_sdk(dsn, release=release, environment=environment)
    try:
        for event_tags in tags:
            with sentry_sdk.new_scope() as scope:
                for key, value in event_tags.items():
                    scope.set_tag(key, value)
                try:
                    fail()
                except (ZeroDivisionError, KeyError):
                    sentry_sdk.capture_exception()
    finally:
        close_sdk()


def bar_titles(page: str) -> list[str]:
    return [html.unescape(title) for title in re.findall(r"<rect[^>]*><title>([^<]*)</title></rect>", page)]


def test_chart_counts_the_events_sent_and_tags_are_broken_down(ui):
    server, client, db = ui
    send_errors(server.dsn(), [{"customer": "acme"}, {"customer": "acme"}, {"customer": "globex"}])
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues WHERE count = 3"))[0][0]
    sign_in(client)

    page = client.get(f"/ui/issues/{issue_id}/")
    assert page.status_code == 200
    titles = bar_titles(page.text)
    assert len(titles) == 1 and titles[0].endswith(": 3 events"), titles  # the hour they were sent in
    assert "3 events in the last 24h" in page.text
    daily = client.get(f"/ui/issues/{issue_id}/", params={"period": "30d"})
    (title,) = bar_titles(daily.text)
    assert title.endswith(" UTC: 3 events") and "–" not in title  # a day, not an hour
    assert 'aria-current="page" class="current">30d<' in daily.text

    tags = page.text[page.text.index('<h2 id="tags">Tags</h2>'):]
    customer = tags[tags.index("<h3>customer</h3>"):]
    customer = customer[:customer.index("</table>")]
    rows = re.findall(r'<code>([^<]*)</code></td><td class="num">(\d+)</td><td class="num">([^<]*)</td>', customer)
    assert rows == [("acme", "2", "66.7%"), ("globex", "1", "33.3%")]
    for key, value in (("release", "shop@1.0"), ("environment", "test"), ("level", "error")):
        section = tags[tags.index(f"<h3>{key}</h3>"):]
        assert f'<code>{value}</code></td><td class="num">3</td><td class="num">100%</td>' in section


def test_release_and_environment_filters_narrow_the_stream(ui):
    server, client, db = ui
    send_errors(server.dsn(), [{}], release="shop@1.0", environment="production")
    send_errors(server.dsn(), [{}], release="shop@2.0", environment="staging", fail=fail_in_shipping)
    wait_for(lambda: query(db, "SELECT count(*) FROM issues") == [(2,)])
    sign_in(client)

    def stream(**params: str) -> str:
        response = client.get("/ui/projects/demo/issues/", params=params)
        assert response.status_code == 200
        return response.text

    both = stream()
    assert "ZeroDivisionError" in both and "KeyError" in both
    first = stream(release="shop@1.0")
    assert "ZeroDivisionError" in first and "KeyError" not in first
    assert 'name="release" value="shop@1.0"' in first  # the form keeps the filter
    staging = stream(environment="staging")
    assert "KeyError" in staging and "ZeroDivisionError" not in staging
    assert "No issues match." in stream(release="shop@2.0", environment="production")
    assert "No issues match." in stream(release="shop@3.0")


def test_tag_values_and_releases_with_markup_are_inert(ui):
    server, client, db = ui
    event = {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": "error",
             "release": XSS, "environment": "prod", "message": "hostile tags", "tags": {"evil": XSS, XSS: "key"}}
    response = httpx.post(f"{server.url}/api/1/store/", json=event,
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})
    assert response.status_code == 200, response.text
    issue_id = wait_for(lambda: query(db, "SELECT id FROM issues"))[0][0]
    sign_in(client)
    for path, params in ((f"/ui/issues/{issue_id}/", {}), ("/ui/projects/demo/issues/", {"release": XSS})):
        body = client.get(path, params=params).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, path
        assert "<script" not in body.lower(), path


def test_projects_page_shows_escaped_sdk_snippets(ui):
    server, client, _ = ui
    sign_in(client)
    page = client.get("/ui/").text
    dsn = server.dsn()
    assert "SDK setup" in page
    assert html.escape(f'dsn="{dsn}"') in page  # Python
    assert html.escape(f'dsn: "{dsn}"') in page  # JavaScript / Node
    assert html.escape(f"curl -X POST http://127.0.0.1:{server.port}/api/1/envelope/") in page
    # A hostile Host header ends up in the DSN: escaped in the page, quoted in the shell snippet.
    hostile = client.get("/ui/", headers={"Host": "x'<b>y"}).text
    assert "<b>y" not in hostile and "&lt;b&gt;y" in hostile


def test_the_curl_snippet_sends_an_event(ui):
    """The curl example really is an envelope this server accepts (sent here with httpx, same bytes)."""
    server, client, db = ui
    sign_in(client)
    page = html.unescape(client.get("/ui/").text)
    snippet = page[page.index("curl -X POST"):]
    body = snippet[snippet.index("<<'EOF'\n") + 8:snippet.index("\nEOF\n")] + "\n"
    auth = re.search(r"-H 'X-Sentry-Auth: ([^']*)'", snippet).group(1)
    response = httpx.post(f"{server.url}/api/1/envelope/", content=body.encode(),
                          headers={"X-Sentry-Auth": auth, "Content-Type": "application/x-sentry-envelope"})
    assert response.status_code == 200, response.text
    wait_for(lambda: query(db, "SELECT title FROM issues") == [("Hello from curl",)])
