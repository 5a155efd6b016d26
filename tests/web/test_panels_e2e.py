"""Issue-page panels (``minisentry_register_ui_panels``) in the real server: plugins installed as
distributions with entry points (a dist-info folder on PYTHONPATH), the real sentry-sdk, real HTTP.
A panel renders, a raising one leaves the page whole with a note, a str is escaped, duplicate names
stop startup; and the deploys example plugin names the deploy an issue was first seen after."""

from __future__ import annotations

import html
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from .. import services
from ..conftest import KEY, ServerProcess, base_config, write_config
from ..e2e.test_sdk import wait_for
from .test_web_e2e import XSS, create_user, query, send_sdk_error, sign_in

pytestmark = pytest.mark.e2e

PANELS = '''
from minisentry import hookimpl
from minisentry.web.html import render


class Count:
    name = "count"
    title = "Events by SQL"

    def render(self, issue, db):
        (n,) = db.execute("SELECT count(*) FROM events WHERE issue_id = ?", [issue["id"]]).fetchone()
        return render('<p class="count">$n events of <em>$title</em></p>', n=n, title=issue["title"])


class Boom:
    name = "boom"
    title = "Boom"

    def render(self, issue, db):
        raise RuntimeError("the panel's own bug")


class Text:
    name = "text"
    title = "Plain text"

    def render(self, issue, db):
        return "<script>alert(1)</script> is text here"


class Writer:
    name = "writer"
    title = "Writer"

    def render(self, issue, db):
        db.execute("DELETE FROM events")  # the read-only store refuses


@hookimpl
def minisentry_register_ui_panels():
    return [Count(), Boom(), Text(), Writer()]
'''

DUPLICATE = '''
from minisentry import hookimpl


class AlsoCount:
    name = "count"
    title = "Another count"

    def render(self, issue, db):
        return ""


@hookimpl
def minisentry_register_ui_panels():
    return [AlsoCount()]
'''


def install(site: Path, dist: str, module: str, source: str) -> None:
    """An installed distribution as pip leaves it: the module and a dist-info with its entry point."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"  # as pip names it (a '-' ends the name)
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[minisentry]\n{module} = {module}\n")


def start(tmp_path: Path, site: Path) -> ServerProcess:
    config = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    path = os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH"))))
    return ServerProcess(config, extra_env={"PYTHONPATH": path})


@contextmanager
def signed_in_client(server: ServerProcess) -> Iterator[httpx.Client]:
    assert create_user(server.config_path).returncode == 0
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
        assert sign_in(client).status_code == 303
        yield client


def panel(page: str, name: str) -> str:
    match = re.search(rf'<section class="panel" id="panel-{name}"><h2>([^<]*)</h2>(.*?)</section>', page, re.S)
    assert match, f"no panel {name}"
    return match.group(2)


def test_panels_render_in_isolation_and_only_markup_is_html(tmp_path):
    site = tmp_path / "site"
    install(site, "minisentry-test-panels", "minisentry_test_panels", PANELS)
    server = start(tmp_path, site)
    try:
        db = tmp_path / "store.sqlite"
        send_sdk_error(server.dsn())
        send_sdk_error(server.dsn())
        wait_for(lambda: query(db, "SELECT count FROM issues") == [(2,)], timeout=30)
        ((issue_id,),) = query(db, "SELECT id FROM issues")
        with signed_in_client(server) as client:
            page = client.get(f"/ui/issues/{issue_id}/")
            assert page.status_code == 200
            assert panel(page.text, "count") == '<p class="count">2 events of <em>ZeroDivisionError: division by zero</em></p>'
            assert "Events by SQL" in page.text
            assert panel(page.text, "boom") == '<p class="error panel-failed">panel boom failed</p>'
            assert panel(page.text, "writer") == '<p class="error panel-failed">panel writer failed</p>'
            assert panel(page.text, "text") == f'<p class="panel-text">{html.escape(XSS)} is text here</p>'
            assert "<script" not in page.text
            # The rest of the page is there: the chart, the tags and the event after the panels.
            assert "Events over time" in page.text and 'id="tags"' in page.text and "raise_in_checkout" in page.text
            assert query(db, "SELECT count(*) FROM events") == [(2,)]
    finally:
        code, _, err = server.stop()
    assert "ui panel 'boom' failed for issue" in err and "RuntimeError: the panel's own bug" in err
    assert "ui panel 'writer' failed" in err and "readonly" in err


def test_duplicate_panel_names_stop_startup(tmp_path):
    site = tmp_path / "site"
    install(site, "minisentry-test-panels", "minisentry_test_panels", PANELS)
    install(site, "minisentry-more-panels", "minisentry_more_panels", DUPLICATE)
    with pytest.raises(RuntimeError) as info:
        start(tmp_path, site)
    assert "minisentry_register_ui_panels: 'count' registered by both" in str(info.value)


def test_deploys_panel_names_the_deploy_the_issue_was_first_seen_after(tmp_path, server_factory):
    services.require_module("minisentry_deploys")
    server = server_factory()
    db = tmp_path / "store.sqlite"
    now = time.time()
    deploys = [("shop@0.9", "production", now - 7200), ("shop@1.0", "staging", now - 600),
               ("shop@1.1", "production", now + 3600)]
    for release, environment, timestamp in deploys:
        sent = httpx.post(f"{server.url}/api/1/deploys/?sentry_key={KEY}", json={
            "release": release, "environment": environment, "timestamp": timestamp})
        assert sent.status_code == 202, sent.text
    other = httpx.post(f"{server.url}/api/2/deploys/?sentry_key=fedcba9876543210fedcba9876543210",
                       json={"release": "billing@7", "timestamp": now - 60})
    assert other.status_code == 202
    send_sdk_error(server.dsn())
    wait_for(lambda: query(db, "SELECT count(*) FROM plugin_deploys") == [(4,)], timeout=30)
    ((issue_id, first_seen),) = wait_for(lambda: query(db, "SELECT id, first_seen FROM issues"), timeout=30)
    assert deploys[1][2] < first_seen < deploys[2][2]
    with signed_in_client(server) as client:
        page = client.get(f"/ui/issues/{issue_id}/")
    assert page.status_code == 200
    shown = panel(page.text, "deploys")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(deploys[1][2]))
    assert f"First seen after deploy <strong>shop@1.0</strong> (staging, {when})" in shown
    table = shown.split("<table", 1)[1]
    assert table.index("shop@1.1") < table.index("shop@1.0") < table.index("shop@0.9")
    assert '<tr class="culprit">' in table and "billing@7" not in shown
