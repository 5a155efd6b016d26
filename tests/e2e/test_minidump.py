"""Minidump uploads to the real server over HTTP: stored as an event.minidump attachment of a new event."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from ..conftest import KEY, OTHER_KEY, base_config
from .test_sdk import cli, wait_for

pytestmark = pytest.mark.e2e

MINIDUMP = b"MDMP\x93\xa7\x00\x00" + bytes(range(256)) * 8  # the magic header, then anything


def outcomes(server) -> list[dict]:
    return json.loads(cli(server.config_path, "outcomes", "--json").stdout)


def test_minidump_upload_is_stored_with_its_event(tmp_path, server_factory):
    server = server_factory()
    response = httpx.post(
        f"{server.url}/api/1/minidump/", params={"sentry_key": KEY},
        files={"upload_file_minidump": ("crash.dmp", MINIDUMP, "application/octet-stream"),
               "app.log": ("app.log", b"started\ncrashed\n", "text/plain")},
        data={"sentry": json.dumps({"release": "native-app@3.1", "tags": {"from": "json"}}),
              "sentry[tags][build]": "1234", "guid": "c0ffee"},
    )
    assert response.status_code == 200, response.text
    event_id = response.text
    assert str(uuid.UUID(event_id)) == event_id  # the plain hyphenated UUID, as Sentry answers

    def listed():
        rows = json.loads(cli(server.config_path, "events", "attachments", "--json", event_id).stdout or "[]")
        return rows if len(rows) == 2 else None

    rows = {row["filename"]: row for row in wait_for(listed, timeout=30)}
    dump = rows["crash.dmp"]
    assert dump["attachment_type"] == "event.minidump" and dump["size"] == len(MINIDUMP)
    assert rows["app.log"]["attachment_type"] == "event.attachment"
    target = tmp_path / "out.dmp"
    result = cli(server.config_path, "events", "attachments", event_id, "--get", str(dump["id"]), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == MINIDUMP
    event = json.loads(cli(server.config_path, "events", "show", "--json", event_id).stdout)
    data = event["data"]
    assert data["platform"] == "native" and data["level"] == "fatal" and data["release"] == "native-app@3.1"
    assert ["build", "1234"] in data["tags"] and ["from", "json"] in data["tags"]
    assert data["extra"] == {"guid": "c0ffee"}
    assert data["exception"]["values"][0]["type"] == "Minidump"


def test_bad_minidump_uploads_get_precise_errors_and_outcomes(tmp_path, server_factory):
    server = server_factory(base_config(tmp_path, limits={"max_attachments_bytes": 4096}))
    url = f"{server.url}/api/1/minidump/"
    missing = httpx.post(url, params={"sentry_key": KEY}, files={"other": ("x.dmp", MINIDUMP)})
    assert missing.status_code == 400 and "upload_file_minidump" in missing.json()["detail"]
    not_a_dump = httpx.post(url, headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"},
                            files={"upload_file_minidump": ("x.dmp", b"ELF\x7f" + b"\0" * 100)})
    assert not_a_dump.status_code == 400 and "does not start with 'MDMP'" in not_a_dump.json()["detail"]
    not_multipart = httpx.post(url, params={"sentry_key": KEY}, content=MINIDUMP,
                               headers={"Content-Type": "application/octet-stream"})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["detail"]
    truncated = httpx.post(url, params={"sentry_key": KEY}, content=b"--abc\r\nContent-Disposition: form-data; "
                           b'name="upload_file_minidump"; filename="x"\r\n\r\nMDMP',
                           headers={"Content-Type": "multipart/form-data; boundary=abc"})
    assert truncated.status_code == 400 and "without the closing" in truncated.json()["detail"]
    too_big = httpx.post(url, params={"sentry_key": KEY}, files={"upload_file_minidump": ("x.dmp", MINIDUMP * 4)})
    assert too_big.status_code == 413
    assert httpx.post(url, files={"upload_file_minidump": ("x.dmp", MINIDUMP)}).status_code == 401
    assert httpx.post(url, params={"sentry_key": OTHER_KEY},
                      files={"upload_file_minidump": ("x.dmp", MINIDUMP)}).status_code == 403

    def invalid() -> dict:
        return {r["reason"]: r["quantity"] for r in outcomes(server) if r["outcome"] == "invalid"
                and r["project_id"] == 1}

    wait_for(lambda: invalid().get("invalid_multipart") == 4 and invalid().get("too_large") == 1, timeout=30)
    assert not any(r["outcome"] == "accepted" for r in outcomes(server))
