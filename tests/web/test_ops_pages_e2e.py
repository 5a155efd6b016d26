"""The operations pages (stats, releases, monitors, status) against the real server and a SQLite file on
disk, fed by the real sentry-sdk and the real CLI; plus arbitrary query strings never making a 500."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

import httpx
import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings, strategies as st
from sentry_sdk.crons import capture_checkin

from minisentry.backends.sqlite import SqliteStore
from minisentry.config import load_config
from minisentry.monitors import CheckIn

from ..conftest import base_config
from ..e2e.test_sdk import close_sdk, init_sdk, wait_for
from .test_issue_insights_e2e import bar_titles, send_errors
from .test_web_e2e import XSS, create_user, query, sign_in, ui  # noqa: F401  (ui: the fixture)

pytestmark = pytest.mark.e2e

OPS_PAGES = ("/ui/stats/", "/ui/releases/", "/ui/monitors/", "/ui/status/")


def test_operations_pages_need_a_session(ui):
    _, client, _ = ui
    for path in (*OPS_PAGES, "/ui/stats", "/ui/status?period=7d"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login", path
    sign_in(client)
    for path in OPS_PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        for link in OPS_PAGES:  # the nav bar links every page
            assert f'href="{link}"' in page.text


def test_stats_chart_shows_accepted_errors(ui):
    server, client, db = ui
    send_errors(server.dsn(), [{}, {}, {}])
    wait_for(lambda: query(db, "SELECT sum(quantity) FROM outcomes WHERE category = 'error' AND outcome = 0")
             == [(3,)])
    sign_in(client)
    page = client.get("/ui/stats/", params={"project": "demo"})
    assert page.status_code == 200
    chart = page.text[page.text.index('id="category-error"'):]
    chart = chart[:chart.index("</svg>")]
    (title,) = bar_titles(chart)
    assert title.endswith("— accepted: 3")
    other = client.get("/ui/stats/", params={"project": "other", "period": "30d"})
    assert "No outcomes in the last 30d." in other.text
    assert client.get("/ui/stats/", params={"project": "nope"}).status_code == 404


def test_release_health_shows_the_crash_free_rate_of_real_sessions(ui):
    server, client, db = ui
    init_sdk(server.dsn(), auto_session_tracking=False, release="shop@4.2", environment="production")
    scope = sentry_sdk.get_isolation_scope()
    for crash in (False, False, True):
        scope.start_session(session_mode="application")
        if crash:
            scope._session.update(status="crashed")
        scope.end_session()
    close_sdk()
    wait_for(lambda: query(db, "SELECT sum(started), sum(crashed) FROM release_health") == [(3, 1)], timeout=30)
    sign_in(client)
    for params in ({}, {"project": "demo", "period": "24h"}):
        page = client.get("/ui/releases/", params=params).text
        row = page[page.index("<code>shop@4.2</code>"):]
        row = row[:row.index("</tr>")]
        assert "production" in row and '<td class="num crash-free">66.67%</td>' in row
        assert any(t.startswith("shop@4.2 (production): 66.67% crash-free of 3 sessions") for t in bar_titles(page))
    assert "No sessions in the last" in client.get("/ui/releases/", params={"project": "other"}).text


def test_monitors_page_shows_ok_and_missed_check_ins(tmp_path, server_factory):
    server = server_factory(base_config(tmp_path, stages={"drain_timeout": 10.0, "monitor_check_interval": 0.2}))
    assert create_user(server.config_path).returncode == 0
    db = tmp_path / "store.sqlite"
    init_sdk(server.dsn())
    capture_checkin(monitor_slug="nightly-report", status="ok", duration=2.5,
                    monitor_config={"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5})
    close_sdk()
    # A monitor whose last check-in was three hours ago on an hourly schedule: the server marks it missed.
    with SqliteStore(load_config(server.config_path).storage.path) as store:
        store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "hourly-sync", "ok", time.time() - 3 * 3600,
                                        config={"schedule": {"type": "crontab", "value": "0 * * * *"},
                                                "timezone": "UTC", "checkin_margin": 1, "max_runtime": None})])
    wait_for(lambda: query(db, "SELECT slug, status FROM monitors ORDER BY slug")
             == [("hourly-sync", "missed"), ("nightly-report", "ok")], timeout=30)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client)
        page = client.get("/ui/monitors/").text
    rows = {re.search(r"<code>([\w-]+)</code>", row).group(1): row
            for row in re.findall(r"<tr><td>demo</td>.*?</tr>", page, re.S)}
    assert set(rows) == {"hourly-sync", "nightly-report"}
    assert '<span class="badge checkin-ok" title="ok">ok</span>' in rows["nightly-report"]
    assert "0 3 * * *" in rows["nightly-report"] and ", 2.5 s" in rows["nightly-report"]
    assert '<span class="badge checkin-missed" title="missed">missed</span>' in rows["hourly-sync"]
    assert 'class="badge checkin-missed"' in rows["hourly-sync"].split('class="recent"')[1]


def test_status_page_shows_channels_and_kill_switches_in_force(ui, tmp_path):
    server, client, db = ui
    sign_in(client)
    page = client.get("/ui/status/").text
    for name in ("ingest", "symbolicate", "symbolicate_slow", "process", "store"):
        assert re.search(rf'<tr id="channel-{name}"><th>{name}</th><td class="num depth">\d+</td>'
                         rf'<td class="num">2048</td>', page), name
    assert "Ready." in page and "No kill-switch is in force." in page
    switch = tmp_path / "switch.json"
    switch.write_text('[{"project_id": 2}]\n')
    result = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "killswitches",
                             "push", "drop_before_save", str(switch), "--yes"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr

    def switched_on() -> str | None:
        text = client.get("/ui/status/").text
        return text if "drop_before_save" in text else None

    page = wait_for(switched_on)
    assert html.escape("DROP DATA WHERE (project_id = 2)") in page


def test_release_names_with_markup_are_inert_on_the_releases_page(ui):
    server, client, db = ui
    init_sdk(server.dsn(), auto_session_tracking=False, release="rel<b>1", environment="prod<i>")
    scope = sentry_sdk.get_isolation_scope()
    scope.start_session(session_mode="application")
    scope.end_session()
    close_sdk()
    wait_for(lambda: query(db, "SELECT release FROM release_health"), timeout=30)
    sign_in(client)
    page = client.get("/ui/releases/").text
    assert "rel&lt;b&gt;1" in page and "prod&lt;i&gt;" in page
    assert "<b>" not in page and "<i>" not in page
    # The stream's release filter echoes the value into the form: escaped.
    stream = client.get("/ui/projects/demo/issues/", params={"release": XSS, "environment": XSS}).text
    assert "<script" not in stream.lower()


_QUERY = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from((*OPS_PAGES, "/ui/issues/1/", "/ui/projects/demo/issues/")),
       name=st.sampled_from(("period", "project", "release", "environment", "page", "query", "x")), value=_QUERY,
       raw=st.text(max_size=40))
def test_arbitrary_query_strings_never_fail(signed_in, path, name, value, raw):
    client = signed_in
    for query_string in (f"{quote(name)}={quote(value)}", quote(raw, safe="=&;%+")):
        response = client.get(f"{path}?{query_string}")
        assert response.status_code in (200, 404), (path, query_string, response.text[:500])


@pytest.fixture
def signed_in(ui):
    server, client, db = ui
    send_errors(server.dsn(), [{"customer": "acme"}])
    wait_for(lambda: query(db, "SELECT id FROM issues") == [(1,)])
    sign_in(client)
    return client
