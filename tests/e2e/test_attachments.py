"""Attachments from the real sentry-sdk: stored with their event, listed and downloaded (CLI and API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
import sentry_sdk

from ..conftest import TOKEN
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def test_attachment_stored_listed_and_downloaded(tmp_path, server_factory):
    server = server_factory()
    payload = os.urandom(50_000)  # binary, newlines and all
    init_sdk(server.dsn())
    scope = sentry_sdk.get_isolation_scope()
    scope.add_attachment(bytes=payload, filename="../../core.bin", content_type="application/x-core")
    scope.add_attachment(bytes=b"line 1\nline 2\n", filename="app.log")
    event_id = sentry_sdk.capture_message("with attachments", level="error")
    close_sdk()

    def listed():
        rows = json.loads(cli(server.config_path, "events", "attachments", "--json", event_id).stdout or "[]")
        return rows if len(rows) == 2 else None

    rows = {row["filename"]: row for row in wait_for(listed, timeout=30)}
    assert rows["../../core.bin"]["size"] == 50_000 and rows["../../core.bin"]["content_type"] == "application/x-core"

    target = tmp_path / "download.bin"
    result = cli(server.config_path, "events", "attachments", event_id, "--get", str(rows["../../core.bin"]["id"]),
                 "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == payload
    # Without -o the SDK-chosen name is reduced to its base name: nothing is written outside the folder.
    folder = tmp_path / "downloads"
    folder.mkdir()
    subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "events", "attachments",
                    event_id, "--get", str(rows["../../core.bin"]["id"])], cwd=folder, check=True, timeout=60,
                   capture_output=True)
    assert [p.name for p in folder.iterdir()] == ["core.bin"] and not (tmp_path / "core.bin").exists()

    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{server.url}/api/0/projects/acme/demo/events/{event_id}/attachments/"
    listing = httpx.get(base, headers=auth).json()
    assert {item["name"] for item in listing} == {"../../core.bin", "app.log"}
    one = next(item for item in listing if item["name"] == "app.log")
    download = httpx.get(f"{base}{one['id']}/", params={"download": "1"}, headers=auth)
    assert download.content == b"line 1\nline 2\n"
    assert download.headers["content-disposition"] == 'attachment; filename="app.log"'
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-content-type-options"] == "nosniff"
    # A hostile name: only its base name, no path, quotes or control characters reach the header.
    core = next(item for item in listing if item["name"] == "../../core.bin")
    hostile = httpx.get(f"{base}{core['id']}/", params={"download": "1"}, headers=auth)
    assert hostile.headers["content-disposition"] == 'attachment; filename="core.bin"'
    assert httpx.get(f"{server.url}/api/0/projects/acme/other/events/{event_id}/attachments/",
                     headers=auth).json() == []

    outcomes = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
    assert {"project_id": 1, "outcome": "accepted", "reason": "", "category": "attachment",
            "quantity": 50_000 + 14} in outcomes
