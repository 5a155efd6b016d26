"""The on-disk spool behind the relay: bursts absorbed, its limit answered with 429, kept across restarts."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import anyio
import httpx
import pytest

from minisentry.metrics import parse

from ..conftest import KEY, running_pipeline
from ..test_pipeline import error_envelope

pytestmark = pytest.mark.anyio
AUTH = {"X-Sentry-Auth": f"Sentry sentry_key={KEY}"}


def spooled_config(make_config, tmp_path, **spool):
    return make_config(channels={"capacity": 1}, storage={"batch_size": 1},
                       spool={"path": str(tmp_path / "spool.sqlite"), **spool},
                       stages={"enqueue_timeout": 0.05, "drain_timeout": 5.0})


def stored_ids(config) -> set[str]:
    with sqlite3.connect(config.storage.path) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


async def test_burst_goes_to_the_spool_instead_of_429_and_drains_in_order(make_config, tmp_path):
    config = spooled_config(make_config, tmp_path)
    gate = threading.Event()
    order: list[str] = []
    async with running_pipeline(config) as pipeline:
        real_write = pipeline.store.write_batch

        def gated_write(events, outcomes):
            gate.wait(30)
            order.extend(event.event_id for event in events)
            return real_write(events, outcomes)

        pipeline.store.write_batch = gated_write
        ids = [uuid.uuid4().hex for _ in range(40)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            for event_id in ids:
                response = await client.post("/api/1/envelope/", content=error_envelope(event_id), headers=AUTH)
                assert response.status_code == 200
            _, counters = parse((await client.get("/metrics")).text)
            assert counters["minisentry_spool_messages"] > 0
        gate.set()
        await pipeline.flush(30)
        assert len(pipeline.spool) == 0
    assert stored_ids(config) == set(ids)
    assert order == ids  # one worker per stage and a FIFO spool: the order is kept


async def test_full_spool_answers_429_with_its_reason(make_config, tmp_path):
    config = spooled_config(make_config, tmp_path, max_bytes=3000)
    gate = threading.Event()
    async with running_pipeline(config) as pipeline:
        real_write = pipeline.store.write_batch
        pipeline.store.write_batch = lambda events, outcomes: (gate.wait(30), real_write(events, outcomes))[1]
        accepted, refused = [], None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            for _ in range(40):
                event_id = uuid.uuid4().hex
                response = await client.post("/api/1/envelope/", content=error_envelope(event_id), headers=AUTH)
                if response.status_code != 200:
                    refused = response
                    break
                accepted.append(event_id)
        assert refused is not None and refused.status_code == 429 and refused.headers["retry-after"] == "2"
        assert pipeline.spool.size_bytes <= 3000
        gate.set()
        await pipeline.flush(30)
    assert stored_ids(config) == set(accepted)
    with sqlite3.connect(config.storage.path) as conn:
        reasons = {row[0] for row in conn.execute("SELECT reason FROM outcomes WHERE outcome = 2")}
    assert reasons == {"spool_full"}


async def test_shutdown_keeps_the_spool_and_the_next_start_drains_it(make_config, tmp_path):
    config = spooled_config(make_config, tmp_path)
    ids = [uuid.uuid4().hex for _ in range(150)]
    async with running_pipeline(config, http=False) as pipeline:
        real_write = pipeline.store.write_batch

        def slow_write(events, outcomes):
            time.sleep(0.02)
            return real_write(events, outcomes)

        pipeline.store.write_batch = slow_write
        for event_id in ids:
            await pipeline.submit(error_envelope(event_id), 1)
        left = len(pipeline.spool)
    assert left > 0
    first_run = stored_ids(config)
    assert first_run < set(ids)
    async with running_pipeline(config, http=False) as pipeline:
        await pipeline.flush(60)
    assert stored_ids(config) == set(ids)
    with sqlite3.connect(config.storage.path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == len(ids)
