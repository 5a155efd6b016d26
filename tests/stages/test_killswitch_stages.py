"""Kill-switches at each stage boundary, on a running pipeline, and a CLI push reaching a live server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid

import anyio
import httpx
import orjson
import pytest

from minisentry import Pipeline, hookimpl
from minisentry.envelope import Envelope, Item, serialize_envelope
from minisentry.killswitches import validate
from minisentry.plugin_manager import make_plugin_manager

from ..conftest import KEY, OTHER_KEY

pytestmark = pytest.mark.anyio


def envelope(event_id: str, *, platform: str = "python", level: str = "error", attachment: bool = False) -> bytes:
    event = {"event_id": event_id, "platform": platform, "level": level, "release": "shop@1",
             "exception": {"values": [{"type": "ValueError", "value": "x"}]}}
    items = [Item({"type": "event"}, orjson.dumps(event))]
    if attachment:
        items.append(Item({"type": "attachment", "filename": "a.txt"}, b"hello"))
    return serialize_envelope(Envelope({"event_id": event_id}, items))


class Marking:
    name = "marking"

    async def symbolicate(self, message):
        message.errors.append({"type": "symbolicated"})
        return message


class Plugin:
    @hookimpl
    def minisentry_register_symbolicators(self):
        return [Marking()]


async def run(config, switch: str, value: list, envelopes: list[tuple[int, bytes]]):
    pm = make_plugin_manager(entry_points=False, extra=(Plugin(),))
    async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
        pipeline.killswitches.replace({switch: validate(switch, value)})
        for project_id, body in envelopes:
            await pipeline.submit(body, project_id)
        await pipeline.flush()
    with sqlite3.connect(config.storage.path) as conn:
        rows = {r[0]: (r[1], orjson.loads(r[2])) for r in conn.execute("SELECT event_id, issue_id, data FROM events")}
        outcomes = conn.execute("SELECT project_id, outcome, reason, category, quantity FROM outcomes "
                                "WHERE reason = 'killswitch'").fetchall()
    return rows, outcomes


@pytest.mark.parametrize("switch, value, matching, other", [
    ("drop_before_parsing", [{"project_id": 1}], (1, {}), (2, {})),
    ("drop_after_parsing", [{"platform": "native"}], (1, {"platform": "native"}), (1, {"platform": "python"})),
    ("drop_after_parsing", [{"has_attachments": True}], (1, {"attachment": True}), (1, {})),
    ("drop_before_save", [{"project_id": 1, "level": "warning"}], (1, {"level": "warning"}), (1, {"level": "error"})),
])
async def test_dropping_switches(make_config, switch, value, matching, other):
    dropped_id, kept_id = uuid.uuid4().hex, uuid.uuid4().hex
    rows, outcomes = await run(make_config(), switch, value, [
        (matching[0], envelope(dropped_id, **matching[1])), (other[0], envelope(kept_id, **other[1]))])
    assert set(rows) == {kept_id}
    dropped_events = [o for o in outcomes if o[3] == "error"]
    assert dropped_events == [(matching[0], 1, "killswitch", "error", 1)]


async def test_skip_symbolication_processing_and_issue_creation(make_config):
    skipped, normal = uuid.uuid4().hex, uuid.uuid4().hex
    rows, _ = await run(make_config(), "skip_symbolication", [{"platform": "native"}],
                        [(1, envelope(skipped, platform="native")), (1, envelope(normal))])
    assert "errors" not in rows[skipped][1]
    assert rows[normal][1]["errors"] == [{"type": "symbolicated"}]

    raw, normalized = uuid.uuid4().hex, uuid.uuid4().hex
    rows, _ = await run(make_config(), "skip_processing", [{"release": "shop@1", "platform": "native"}],
                        [(1, envelope(raw, platform="native")), (1, envelope(normalized))])
    assert {"type": "processing_skipped"} in rows[raw][1]["errors"]
    assert "logger" not in rows[raw][1] and "logger" in rows[normalized][1]  # only the normalizer adds it
    assert rows[raw][0] is not None  # still grouped into an issue

    ungrouped, grouped = uuid.uuid4().hex, uuid.uuid4().hex
    rows, _ = await run(make_config(), "skip_issue_creation", [{"level": "info"}],
                        [(1, envelope(ungrouped, level="info")), (1, envelope(grouped))])
    assert rows[ungrouped][0] is None and rows[grouped][0] is not None


def test_cli_push_reaches_a_running_server_within_a_second(tmp_path, server_factory):
    server = server_factory()

    def send(key: str, project_id: int) -> str:
        event_id = uuid.uuid4().hex
        response = httpx.post(f"{server.url}/api/{project_id}/envelope/", content=envelope(event_id),
                              headers={"X-Sentry-Auth": f"Sentry sentry_key={key}"})
        assert response.status_code == 200
        return event_id

    def stored(event_id: str) -> bool:
        with sqlite3.connect(f"file:{tmp_path / 'store.sqlite'}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def wait_stored(event_id: str) -> None:
        deadline = time.monotonic() + 20
        while not stored(event_id):
            assert time.monotonic() < deadline, "event not stored"
            time.sleep(0.02)

    before = send(KEY, 1)
    wait_stored(before)
    value = tmp_path / "switch.json"
    value.write_text(json.dumps([{"project_id": 1}]))
    push = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(server.config_path), "killswitches",
                           "push", "drop_before_save", str(value), "--yes"], capture_output=True, text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    assert "DROP DATA WHERE (project_id = 1)" in push.stdout
    time.sleep(1.0)  # the promise under test: a push applies within a second
    dropped, kept = send(KEY, 1), send(OTHER_KEY, 2)
    wait_stored(kept)
    later = send(OTHER_KEY, 2)
    wait_stored(later)  # everything sent before it has passed the store stage by now
    assert not stored(dropped)
