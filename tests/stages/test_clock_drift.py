"""Clock drift: a device with a wrong clock gets server-relative timestamps; far-off times are clamped."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import anyio
import orjson
import pytest

from minisentry.clockdrift import MINIMUM_DRIFT, drift_of
from minisentry.envelope import Envelope, Item, serialize_envelope

from ..conftest import running_pipeline

pytestmark = pytest.mark.anyio


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def test_drift_threshold_and_bad_input():
    assert drift_of(iso(1000.0), 1000.0 + MINIMUM_DRIFT) == MINIMUM_DRIFT
    assert drift_of(iso(1000.0), 1000.0 + MINIMUM_DRIFT - 1) is None  # a slow network, not a wrong clock
    assert drift_of(iso(5000.0), 5000.0 - 7200) == -7200
    for bad in (None, 12, "yesterday", "2026-11-26T10:00:00"):  # naive times carry no clock
        assert drift_of(bad, 0.0) is None


async def test_skewed_device_clock_is_corrected_and_future_times_clamped(make_config):
    now = time.time()
    device_now = now - 3 * 3600  # the device's clock is 3 h behind
    skewed, future = uuid.uuid4().hex, uuid.uuid4().hex
    envelopes = [
        Envelope({"event_id": skewed, "sent_at": iso(device_now)}, [Item({"type": "event"}, orjson.dumps(
            {"event_id": skewed, "message": "skewed", "timestamp": device_now - 5,
             "breadcrumbs": {"values": [{"timestamp": device_now - 60, "message": "before"}]}}))]),
        Envelope({"event_id": future}, [Item({"type": "event"}, orjson.dumps(
            {"event_id": future, "message": "from the future", "timestamp": now + 2 * 86400}))]),
    ]
    async with running_pipeline(make_config(), http=False) as pipeline:
        for envelope in envelopes:
            await pipeline.submit(serialize_envelope(envelope), 1)
        await pipeline.flush()
        corrected = (await anyio.to_thread.run_sync(pipeline.store.get_event, skewed))["data"]
        clamped = (await anyio.to_thread.run_sync(pipeline.store.get_event, future))["data"]
    # Shifted by the drift: 5 s and 60 s before the server's receive time, not 3 h.
    assert abs(corrected["timestamp"] - (now - 5)) < 120
    assert abs(corrected["breadcrumbs"]["values"][0]["timestamp"] - (now - 60)) < 120
    assert {"type": "clock_drift"} in [{"type": e["type"]} for e in corrected["errors"]]
    assert abs(clamped["timestamp"] - now) < 120
    assert clamped["errors"][0]["type"] == "future_timestamp"
