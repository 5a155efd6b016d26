"""The example plugins, installed with pip (entry points), with the real server and the real sentry-sdk.

A CI job POSTs a deploy marker; an error arrives from sentry-sdk; ``minisentry deploys list`` and
``deploys for-issue`` show the deploy; the JSON-lines archive holds the event; ``minisentry plugins``
lists both plugins with their versions.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
import sentry_sdk

from .. import services
from ..conftest import KEY, TOKEN, ServerProcess, base_config, write_config
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _example_plugins_installed():
    """`make venv` installs them; without them this skips locally and fails under CI=true."""
    services.require_module("minisentry_deploys")
    services.require_module("minisentry_jsonl_archive")


def test_deploy_marker_error_and_archive(tmp_path):
    archive = tmp_path / "archive.jsonl"
    config = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    server = ServerProcess(config, extra_env={"MINISENTRY_JSONL_ARCHIVE": str(archive)})
    try:
        deployed_at = time.time() - 5
        response = httpx.post(f"{server.url}/api/1/deploys/?sentry_key={KEY}", json={
            "release": "shop@1.2.3", "environment": "production", "timestamp": deployed_at,
            "url": "https://ci.example.com/runs/42"})
        assert response.status_code == 202, response.text
        refused = httpx.post(f"{server.url}/api/1/deploys/?sentry_key={KEY}", json={"environment": "production"})
        assert refused.status_code == 400 and "release" in refused.json()["detail"]

        init_sdk(server.dsn(), release="shop@1.2.3")
        event_id = sentry_sdk.capture_message("checkout failed after deploy", level="error")
        close_sdk()

        def deploys():
            return json.loads(cli(config, "deploys", "list", "--json").stdout)
        assert wait_for(deploys, timeout=30)[0]["release"] == "shop@1.2.3"

        issues = wait_for(lambda: json.loads(cli(config, "issues", "--json").stdout), timeout=30)
        shown = json.loads(cli(config, "deploys", "for-issue", str(issues[0]["id"]), "--json").stdout)
        assert shown["release"] == "shop@1.2.3" and shown["url"] == "https://ci.example.com/runs/42"

        # The same, through the plugin's read-API route, behind the API's bearer token.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        listed = httpx.get(f"{server.url}/api/0/plugins/deploys/?project=1", headers=auth).json()
        assert [d["release"] for d in listed] == ["shop@1.2.3"]
        before = httpx.get(f"{server.url}/api/0/plugins/deploys/issue/{issues[0]['id']}/", headers=auth).json()
        assert before["deploy"]["url"] == "https://ci.example.com/runs/42"
        assert httpx.get(f"{server.url}/api/0/plugins/deploys/").status_code == 401
        assert httpx.get(f"{server.url}/api/0/plugins/deploys/issue/999999/", headers=auth).status_code == 404
        assert httpx.get(f"{server.url}/api/0/plugins/deploys/?limit=0", headers=auth).status_code == 400
        assert httpx.get(f"{server.url}/api/0/plugins/nosuch/", headers=auth).status_code == 404

        lines = wait_for(lambda: archive.exists() and archive.read_text().splitlines(), timeout=30)
        archived = json.loads(lines[0])
        assert archived["event_id"] == event_id and archived["project_id"] == 1

        listing = cli(config, "plugins").stdout
        assert "deploys 0.1.0:" in listing and "minisentry_register_item_types" in listing
        assert "minisentry_register_ui_panels" in listing
        assert "jsonl_archive 0.1.0: minisentry_process_event" in listing
    finally:
        server.stop()
