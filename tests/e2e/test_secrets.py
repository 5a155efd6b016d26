"""Secrets the SDK sends never reach the disk: the SQLite files are searched byte for byte."""

from __future__ import annotations

import signal
import uuid

import pytest
import sentry_sdk
from sentry_sdk.scrubber import EventScrubber

from .test_sdk import close_sdk, init_sdk, wait_for, count

pytestmark = pytest.mark.e2e

# Made at run time: a literal in this file would sit in the frames' source context, which Sentry
# (and so minisentry) never scrubs.
SECRETS = {name: f"{name}-{uuid.uuid4().hex[:12]}" for name in ("cookie", "local", "extra")}
SECRETS["header"] = "Bearer " + uuid.uuid4().hex
SECRETS["card"] = " ".join(["4111"] * 4)


def login(username, password, card):
    raise PermissionError(f"login failed for {username}")


def add_request(event, hint):
    event["request"] = {
        "url": "https://shop.example/login", "method": "POST",
        "headers": {"Authorization": SECRETS["header"], "User-Agent": "test"},
        "cookies": {"sessionid": SECRETS["cookie"]},
    }
    return event


def test_secrets_in_headers_cookies_locals_and_extra_never_reach_sqlite(tmp_path, server_factory):
    server = server_factory()
    # The SDK scrubs some of this itself; switch that off so the server's scrubbing is what is tested.
    init_sdk(server.dsn(), event_scrubber=EventScrubber(denylist=[]),
             before_send=add_request, include_local_variables=True)
    sentry_sdk.set_extra("password", SECRETS["extra"])
    try:
        login("alice", SECRETS["local"], SECRETS["card"])
    except PermissionError:
        event_id = sentry_sdk.capture_exception()
    close_sdk()
    db = tmp_path / "store.sqlite"
    wait_for(lambda: count(db, f"SELECT count(*) FROM events WHERE event_id = '{event_id}'") == 1)
    code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    files = [path for path in tmp_path.iterdir() if path.name.startswith("store.sqlite")]
    content = b"".join(path.read_bytes() for path in files)
    assert event_id.encode() in content  # the event is there...
    for name, secret in SECRETS.items():
        assert secret.encode() not in content, f"{name} secret reached the disk"  # ...its secrets are not
    assert b"[Filtered]" in content
