"""Symbolication: pull-based workers, a deadline per event, plugin failures marked, never dropped."""

from __future__ import annotations

import uuid

import anyio
import orjson
import pytest

from minisentry import Pipeline, hookimpl
from minisentry.plugin_manager import make_plugin_manager

from ..test_pipeline import error_envelope

pytestmark = pytest.mark.anyio


class GatedSymbolicator:
    """Holds events whose message is 'slow' until released; marks the others as symbolicated."""

    name = "gated"

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.slow_started = anyio.Event()

    async def symbolicate(self, message):
        if b'"slow"' in message.payload:
            self.slow_started.set()
            await self.release.wait()
        return message


class Plugin:
    def __init__(self, *symbolicators) -> None:
        self.symbolicators = symbolicators

    @hookimpl
    def minisentry_register_symbolicators(self):
        return list(self.symbolicators)


def slow_envelope(event_id: str) -> bytes:
    event = {"event_id": event_id, "message": "slow"}
    return b'{"event_id":"%s"}\n{"type":"event"}\n%s\n' % (event_id.encode(), orjson.dumps(event))


async def stored(pipeline, event_id):
    return await anyio.to_thread.run_sync(pipeline.store.get_event, event_id)


async def test_slow_event_does_not_hold_up_fast_ones(make_config):
    gated = GatedSymbolicator()
    pm = make_plugin_manager(entry_points=False, extra=(Plugin(gated),))
    config = make_config(stages={"concurrency": {"symbolicate": 2}})
    async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
        slow_id = uuid.uuid4().hex
        await pipeline.submit(slow_envelope(slow_id), 1)
        await gated.slow_started.wait()
        fast_ids = [uuid.uuid4().hex for _ in range(20)]
        for event_id in fast_ids:
            await pipeline.submit(error_envelope(event_id), 1)
        # The fast events get stored while the slow one is still held by its worker.
        with anyio.fail_after(20):
            for event_id in fast_ids:
                while True:
                    try:
                        await stored(pipeline, event_id)
                        break
                    except Exception:
                        await anyio.sleep(0.01)
        gated.release.set()
        await pipeline.flush()
        assert (await stored(pipeline, slow_id))["data"]["logentry"]["formatted"] == "slow"


async def test_deadline_and_failures_flag_the_event_and_keep_it(make_config):
    class Forever:
        name = "forever"

        async def symbolicate(self, message):
            await anyio.sleep_forever()

    class Broken:
        name = "broken"

        async def symbolicate(self, message):
            raise RuntimeError("symbol server exploded")

    config = make_config(stages={"symbolicate_deadline": 0.2})
    for symbolicator, error_type in ((Forever(), "symbolication_timeout"), (Broken(), "symbolicator_failed")):
        pm = make_plugin_manager(entry_points=False, extra=(Plugin(symbolicator),))
        async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
            event_id = uuid.uuid4().hex
            await pipeline.submit(error_envelope(event_id), 1)
            await pipeline.flush()
            event = await stored(pipeline, event_id)
        errors = event["data"]["errors"]
        assert [e["type"] for e in errors] == [error_type]
        assert errors[0]["symbolicator"] == symbolicator.name


class Probed:
    """Counts calls; ``wants`` says yes only to events whose message is 'mine' (or raises if told to)."""

    name = "probed"

    def __init__(self, probe_raises: bool = False) -> None:
        self.calls: list[str] = []
        self.probe_raises = probe_raises

    def wants(self, message):
        if self.probe_raises:
            raise RuntimeError("probe bug")
        return b'"mine"' in message.payload

    async def symbolicate(self, message):
        self.calls.append(message.event_id)
        await anyio.sleep(0.05)  # long enough to be charged to the lane if it ran
        return message


def message_envelope(event_id: str, text: str) -> bytes:
    event = {"event_id": event_id, "message": text}
    return b'{"event_id":"%s"}\n{"type":"event"}\n%s\n' % (event_id.encode(), orjson.dumps(event))


async def test_events_no_symbolicator_wants_skip_the_stage_and_its_lane_charge(make_config):
    probed = Probed()
    pm = make_plugin_manager(entry_points=False, extra=(Plugin(probed),))
    async with Pipeline(make_config(), http=False, plugin_manager=pm) as pipeline:
        skipped, wanted = uuid.uuid4().hex, uuid.uuid4().hex
        await pipeline.submit(message_envelope(skipped, "not for you"), 1)
        await pipeline.flush()
        assert pipeline.lanes.windowed_cost(1) == 0  # nothing ran: nothing charged to project 1
        await pipeline.submit(message_envelope(wanted, "mine"), 1)
        await pipeline.flush()
        assert probed.calls == [wanted]
        assert pipeline.lanes.windowed_cost(1) > 0
        for event_id in (skipped, wanted):
            assert (await stored(pipeline, event_id))["event_id"] == event_id


async def test_a_probe_that_raises_leaves_the_decision_to_symbolicate(make_config):
    probed = Probed(probe_raises=True)
    pm = make_plugin_manager(entry_points=False, extra=(Plugin(probed),))
    async with Pipeline(make_config(), http=False, plugin_manager=pm) as pipeline:
        event_id = uuid.uuid4().hex
        await pipeline.submit(message_envelope(event_id, "anything"), 1)
        await pipeline.flush()
        assert probed.calls == [event_id]
        assert (await stored(pipeline, event_id))["event_id"] == event_id
