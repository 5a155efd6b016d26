"""Minidump uploads to the real server over HTTP: stored as an event.minidump attachment of a new event."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
import msgpack
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
    not_multipart = httpx.post(url, params={"sentry_key": KEY}, content=b'{"a": 1}',
                               headers={"Content-Type": "application/json"})
    assert not_multipart.status_code == 400 and "multipart/form-data" in not_multipart.json()["detail"]
    bad_gzip = httpx.post(url, params={"sentry_key": KEY},
                          files={"upload_file_minidump": ("x.dmp.gz", b"\x1f\x8b" + b"not a valid gzip stream")})
    assert bad_gzip.status_code == 400 and "gzip minidump is corrupt" in bad_gzip.json()["detail"]
    bomb = httpx.post(url, params={"sentry_key": KEY},
                      files={"upload_file_minidump": ("x.dmp.gz", gzip.compress(b"MDMP" + b"\0" * 1_000_000))})
    assert bomb.status_code == 413 and "inflates past 4096 bytes" in bomb.json()["detail"]
    truncated = httpx.post(url, params={"sentry_key": KEY}, content=b"--abc\r\nContent-Disposition: form-data; "
                           b'name="upload_file_minidump"; filename="x"\r\n\r\nMDMP',
                           headers={"Content-Type": "multipart/form-data; boundary=abc"})
    assert truncated.status_code == 400 and "without the closing" in truncated.json()["detail"]
    too_big = httpx.post(url, params={"sentry_key": KEY}, files={"upload_file_minidump": ("x.dmp", MINIDUMP * 4)})
    assert too_big.status_code == 413
    assert httpx.post(url, files={"upload_file_minidump": ("x.dmp", MINIDUMP)}).status_code == 401
    assert httpx.post(url, params={"sentry_key": OTHER_KEY},
                      files={"upload_file_minidump": ("x.dmp", MINIDUMP)}).status_code == 403

    def invalid(category: str = "error") -> dict:
        return {r["reason"]: r["quantity"] for r in outcomes(server) if r["outcome"] == "invalid"
                and r["project_id"] == 1 and r["category"] == category}

    wait_for(lambda: invalid() == {"missing_minidump_upload": 1, "invalid_minidump": 1, "invalid_multipart": 2,
                                   "invalid_compression": 1, "too_large": 2}, timeout=30)
    # Each refused upload's bytes are counted as attachment bytes lost, as Relay does.
    assert invalid("attachment")["invalid_minidump"] > 100
    assert not any(r["outcome"] == "accepted" for r in outcomes(server))


def test_native_sdk_upload_compressed_dump_msgpack_event_and_raw_body(tmp_path, server_factory):
    server = server_factory()
    event_id = "2dd132e467174db48dbaddabd3cbed57"
    response = httpx.post(
        f"{server.url}/api/1/minidump/", params={"sentry_key": KEY},
        files={"upload_file_minidump": ("crash.dmp.gz", gzip.compress(MINIDUMP), "application/gzip"),
               "__sentry-event": ("__sentry-event", msgpack.packb({"event_id": event_id, "user": {"id": "123"},
                                                                  "release": "native@1"})),
               "__sentry-breadcrumb1": ("__sentry-breadcrumb1", msgpack.packb({"timestamp": 1461185755,
                                                                               "message": "A"})),
               "__sentry-breadcrumb2": ("__sentry-breadcrumb2", msgpack.packb({"timestamp": 1461185750,
                                                                               "message": "B"}))})
    assert response.status_code == 200 and response.text == str(uuid.UUID(event_id))

    def shown(wanted: str):
        result = cli(server.config_path, "events", "show", "--json", wanted)
        return json.loads(result.stdout) if result.returncode == 0 else None

    data = wait_for(lambda: shown(event_id), timeout=30)["data"]
    assert data["user"]["id"] == "123" and data["release"] == "native@1"
    assert [c["message"] for c in data["breadcrumbs"]["values"]] == ["A"]
    rows = json.loads(cli(server.config_path, "events", "attachments", "--json", event_id).stdout)
    # Only the dump is kept (the __sentry-* payloads were read into the event), and decompressed.
    assert [(r["attachment_type"], r["size"]) for r in rows] == [("event.minidump", len(MINIDUMP))]

    raw = httpx.post(f"{server.url}/api/1/minidump/", params={"sentry_key": KEY}, content=MINIDUMP,
                     headers={"Content-Type": "application/x-dmp"})
    assert raw.status_code == 200
    raw_rows = wait_for(lambda: json.loads(cli(server.config_path, "events", "attachments", "--json",
                                               raw.text).stdout or "[]") or None, timeout=30)
    assert [(r["attachment_type"], r["size"]) for r in raw_rows] == [("event.minidump", len(MINIDUMP))]
