"""Item types minisentry does not store yet (profiles, replays, metrics) each get exactly one outcome.

Sent in one real envelope over HTTP with an event; the event is stored, every other item is counted
``filtered``/``unsupported_item_type`` in its Sentry data category — none is dropped silently.
"""

from __future__ import annotations

import json
import uuid

import httpx
import orjson
import pytest

from ..conftest import KEY
from .test_sdk import cli, wait_for

pytestmark = pytest.mark.e2e


def item(headers: dict, payload: bytes) -> bytes:
    return orjson.dumps({**headers, "length": len(payload)}) + b"\n" + payload + b"\n"


def test_profile_replay_and_metric_items_are_counted_not_dropped(server_factory):
    server = server_factory()
    event_id = uuid.uuid4().hex
    replay_id = uuid.uuid4().hex
    body = orjson.dumps({"event_id": event_id, "sent_at": "2024-01-01T00:00:00Z"}) + b"\n" + b"".join([
        item({"type": "event"}, orjson.dumps({"message": "with extras", "level": "error"})),
        item({"type": "profile"}, orjson.dumps({"version": "1", "platform": "python", "event_id": uuid.uuid4().hex,
                                                "profile": {"samples": [], "stacks": [], "frames": []}})),
        item({"type": "replay_event"}, orjson.dumps({"type": "replay_event", "replay_id": replay_id, "segment_id": 0})),
        item({"type": "replay_recording"}, b'{"segment_id":0}\n[{"type":4,"timestamp":1,"data":{}}]'),
        item({"type": "statsd"}, b"button_click:1|c|#route:/checkout\npage_load:12.5|d\n"),
        item({"type": "metric_buckets"}, orjson.dumps([{"name": "c:custom/clicks@none", "type": "c", "value": 3,
                                                        "timestamp": 1700000000, "width": 10}])),
    ])
    response = httpx.post(f"{server.url}/api/1/envelope/", content=body,
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7",
                                   "Content-Type": "application/x-sentry-envelope"})
    assert response.status_code == 200, response.text

    def counted() -> dict:
        rows = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
        return {(r["outcome"], r["reason"], r["category"]): r["quantity"] for r in rows}

    expected = {
        ("accepted", "", "error"): 1,
        ("filtered", "unsupported_item_type", "profile"): 1,
        ("filtered", "unsupported_item_type", "replay"): 2,
        ("filtered", "unsupported_item_type", "metric_bucket"): 2,
    }
    wait_for(lambda: counted() == expected, timeout=30)
