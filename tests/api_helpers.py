"""Helpers for the web API tests: a real server, tokens made by the real CLI, events over HTTP."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from minisentry.cli import cli
from minisentry.plugin_manager import make_plugin_manager

from .conftest import KEY, OTHER_KEY
from .e2e.test_sdk import wait_for
from .web.test_web_e2e import query

ALL_SCOPES = "project:read,event:read,event:write,org:read"


def run_cli(config: Path, *args: str):
    """Run ``minisentry --config CONFIG ARGS`` in-process; return click's Result."""
    return CliRunner().invoke(cli, ["--config", str(config), *args], obj={"pm": make_plugin_manager()})


def make_token(config: Path, name: str = "all", scopes: str = ALL_SCOPES) -> str:
    """Create a stored token with the CLI and return it (the one line on stdout)."""
    result = run_cli(config, "tokens", "create", "--name", name, "--scopes", scopes)
    assert result.exit_code == 0, result.output
    (token,) = result.stdout.split()
    return token


@dataclass
class Api:
    """A running server with a token of every scope: ``client`` sends it."""

    server: object
    db: Path
    client: httpx.Client
    token: str

    def send(self, *, function: str = "handler", exc_type: str = "ValueError", release: str | None = None,
             environment: str | None = None, level: str = "error", project: int = 1) -> str:
        """Store one error event over the real ingest endpoint and wait until it is stored."""
        event = {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python", "level": level,
                 "exception": {"values": [{"type": exc_type, "value": "boom", "stacktrace": {"frames": [
                     {"function": function, "module": "app.views", "filename": "app/views.py", "lineno": 3,
                      "in_app": True}]}}]}}
        if release is not None:
            event["release"] = release
        if environment is not None:
            event["environment"] = environment
        key = KEY if project == 1 else OTHER_KEY
        response = httpx.post(f"{self.server.url}/api/{project}/store/", json=event,
                              headers={"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7"})
        assert response.status_code == 200, response.text
        wait_for(lambda: query(self.db, "SELECT 1 FROM events WHERE event_id = ?", event["event_id"]))
        return event["event_id"]

    def issue_of(self, event_id: str) -> str:
        """The issue id (a string, as the API writes it) of a stored event."""
        return str(query(self.db, "SELECT issue_id FROM events WHERE event_id = ?", event_id)[0][0])

    def status(self, issue_id: str) -> str:
        """The issue's status as the API shows it."""
        response = self.client.get(f"/api/0/issues/{issue_id}/")
        assert response.status_code == 200, response.text
        return response.json()["status"]

    def put(self, issue_id: str, body: object) -> httpx.Response:
        return self.client.put(f"/api/0/issues/{issue_id}/", json=body)


def next_cursor(link: str) -> str | None:
    """The ``next`` cursor of a Link header, or None when it says there are no more results."""
    match = re.search(r'rel="next"; results="(true|false)"; cursor="([^"]+)"', link)
    assert match, link
    return match.group(2) if match.group(1) == "true" else None


@pytest.fixture
def api(tmp_path, server_factory):
    """A running server and an httpx client carrying a stored token with every scope."""
    server = server_factory()
    token = make_token(server.config_path)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield Api(server, tmp_path / "store.sqlite", client, token)
