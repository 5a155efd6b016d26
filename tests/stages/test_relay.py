"""The relay's HTTP contract, driven over real HTTP against an embedded pipeline on both backends."""

from __future__ import annotations

import base64
import gzip
import threading
import uuid
import zlib

import anyio
import brotli
import httpx
import orjson
import pytest
import zstandard

from minisentry.envelope import Envelope, Item, serialize_envelope

from ..conftest import KEY, OTHER_KEY, running_pipeline

pytestmark = pytest.mark.anyio

AUTH = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={KEY}, sentry_client=test/1.0"}


def event_envelope(event_id: str | None = None, *, extra_items: list[Item] | None = None,
                   headers: dict | None = None, message: str = "hello") -> tuple[str, bytes]:
    event_id = event_id or uuid.uuid4().hex
    event = {"event_id": event_id, "message": message, "level": "error", "platform": "python"}
    env_headers = {"event_id": event_id, **(headers or {})}
    items = [Item({"type": "event"}, orjson.dumps(event))] + (extra_items or [])
    return event_id, serialize_envelope(Envelope(env_headers, items))


async def post(client: httpx.AsyncClient, body: bytes, *, path: str = "/api/1/envelope/",
               headers: dict | None = None, params: dict | None = None) -> httpx.Response:
    return await client.post(path, content=body, headers=headers if headers is not None else AUTH, params=params)


def client_for(pipeline) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}", timeout=10)


async def stored_ids(pipeline) -> set[str]:
    await pipeline.flush()
    rows = pipeline.store._run(lambda c: c.execute("SELECT event_id FROM events").fetchall())
    return {row[0] for row in rows}


async def test_envelope_accepted_and_stored(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        event_id, body = event_envelope()
        response = await post(client, body)
        assert response.status_code == 200
        assert response.json() == {"id": event_id}
        assert response.headers["access-control-allow-origin"] == "*"
        assert "X-Sentry-Rate-Limits" in response.headers["access-control-expose-headers"]
        assert await stored_ids(pipeline) == {event_id}


@pytest.mark.parametrize("path", ["/api/1/envelope/", "/api/1/envelope"])
async def test_trailing_slash_optional_and_query_key(make_config, path):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        event_id, body = event_envelope()
        response = await post(client, body, path=path, headers={}, params={"sentry_key": KEY})
        assert response.status_code == 200, response.text
        assert event_id in await stored_ids(pipeline)


async def test_key_from_envelope_dsn(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        event_id, body = event_envelope(headers={"dsn": f"http://{KEY}@example.com/1"})
        assert (await post(client, body, headers={})).status_code == 200
        assert event_id in await stored_ids(pipeline)


@pytest.mark.parametrize(
    "headers, dsn_key, status",
    [
        ({}, None, 401),
        ({"X-Sentry-Auth": "Sentry sentry_key=" + "9" * 32}, None, 403),
        ({"X-Sentry-Auth": f"Sentry sentry_key={OTHER_KEY}"}, None, 403),
        ({"X-Sentry-Auth": "Sentry sentry_key=not-a-key"}, None, 403),
        ({}, "9" * 32, 403),
    ],
    ids=["no-credentials", "unknown-key", "other-projects-key", "malformed-key", "unknown-dsn-key"],
)
async def test_auth_failures(make_config, headers, dsn_key, status):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        env_headers = {"dsn": f"http://{dsn_key}@example.com/1"} if dsn_key else None
        _, body = event_envelope(headers=env_headers)
        response = await post(client, body, headers=headers)
        assert response.status_code == status
        assert response.json()["detail"]
        assert response.headers["x-sentry-error"]
        assert await stored_ids(pipeline) == set()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "identity"])
async def test_content_encodings(make_config, encoding):
    compress = {
        "gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress, "identity": lambda b: b,
    }[encoding]
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        event_id, body = event_envelope()
        response = await post(client, compress(body), headers={**AUTH, "Content-Encoding": encoding})
        assert response.status_code == 200, response.text
        assert event_id in await stored_ids(pipeline)


async def test_unknown_encoding_and_corrupt_body(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        _, body = event_envelope()
        assert (await post(client, body, headers={**AUTH, "Content-Encoding": "lzma"})).status_code == 415
        assert (await post(client, b"\x1f\x8bnot gzip", headers={**AUTH, "Content-Encoding": "gzip"})).status_code == 400
        event_id, body = event_envelope()
        assert (await post(client, body)).status_code == 200
        assert event_id in await stored_ids(pipeline)


@pytest.mark.parametrize("body", [b"", b"not json\n", b"[]\n", b'{}\n{"type": 5}\n', b'{}\n{"type":"event","length":99}\nab'])
async def test_malformed_envelopes_400(make_config, body):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        response = await post(client, body)
        assert response.status_code == 400
        assert "detail" in response.json()


async def test_unknown_items_kept_and_skipped_with_outcome(make_config):
    weird = Item({"type": "brand_new_thing", "x-header": [1, 2]}, b"\x00\x01binary\nstuff")
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        event_id, body = event_envelope(extra_items=[weird])
        assert (await post(client, body)).status_code == 200
        assert event_id in await stored_ids(pipeline)
    with pipeline.store.__class__(pipeline.config.storage.path) as store:
        outcomes = store.outcome_totals()
    assert {"project_id": 1, "outcome": "filtered", "reason": "unsupported_item_type", "category": "default",
            "quantity": 1} in outcomes
    assert {"project_id": 1, "outcome": "accepted", "reason": "", "category": "error", "quantity": 1} in outcomes


async def test_oversize_event_and_bomb_413_then_keeps_serving(make_config):
    config = make_config(limits={"max_event_bytes": 10_000, "max_envelope_bytes": 100_000})
    async with running_pipeline(config) as pipeline, client_for(pipeline) as client:
        _, big = event_envelope(message="x" * 20_000)
        assert (await post(client, big)).status_code == 413
        bomb = gzip.compress(b"\n" * 50_000_000)
        assert len(bomb) < 100_000
        response = await post(client, bomb, headers={**AUTH, "Content-Encoding": "gzip"})
        assert response.status_code == 413
        event_id, body = event_envelope()
        assert (await post(client, body)).status_code == 200
        assert await stored_ids(pipeline) == {event_id}


async def test_store_endpoint_json_and_legacy_base64_zlib(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        response = await post(client, orjson.dumps({"event_id": first, "message": "via store"}), path="/api/1/store/")
        assert response.status_code == 200 and response.json() == {"id": first}
        legacy = base64.b64encode(zlib.compress(orjson.dumps({"event_id": second, "message": "old sdk"})))
        response = await post(client, legacy, path="/api/1/store")
        assert response.status_code == 200 and response.json() == {"id": second}
        assert (await post(client, b"garbage!", path="/api/1/store/")).status_code == 400
        assert await stored_ids(pipeline) == {first, second}


async def test_cors_preflight_and_health(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        response = await client.options("/api/1/envelope/", headers={"Origin": "https://app.example",
                                                                     "Access-Control-Request-Method": "POST"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-sentry-auth" in response.headers["access-control-allow-headers"]
        assert (await client.get("/api/relay/healthcheck/live/")).status_code == 200
        assert (await client.get("/api/relay/healthcheck/ready/")).status_code == 200
        assert (await client.get("/api/1/envelope/")).status_code == 405
        assert (await client.get("/nope")).status_code == 404


async def test_full_pipeline_answers_429_then_recovers(make_config):
    """At the channel limit the relay waits enqueue_timeout, then answers 429 with Retry-After."""
    config = make_config(channels={"capacity": 1}, stages={"enqueue_timeout": 0.05, "retry_after": 3},
                         storage={"batch_size": 1})
    gate = threading.Event()
    async with running_pipeline(config) as pipeline, client_for(pipeline) as client:
        real_write = pipeline.store.write_batch

        def blocked_write(events, outcomes):
            gate.wait(30)
            return real_write(events, outcomes)

        pipeline.store.write_batch = blocked_write
        accepted: list[str] = []
        refused = None
        for _ in range(50):
            event_id, body = event_envelope()
            response = await post(client, body)
            if response.status_code == 200:
                accepted.append(event_id)
            else:
                refused = response
                break
        assert refused is not None, "the pipeline never filled up"
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "3"
        # Every channel holds at most its capacity, plus one message in each stage's hands.
        assert 1 <= len(accepted) <= 4 * 2 + 1
        gate.set()
        event_id, body = event_envelope()
        with anyio.fail_after(10):
            while (response := await post(client, body)).status_code == 429:
                await anyio.sleep(0.05)
        assert response.status_code == 200
        assert await stored_ids(pipeline) == set(accepted) | {event_id}
    with pipeline.store.__class__(config.storage.path) as store:
        totals = store.outcome_totals()
    assert any(row["outcome"] == "rate_limited" and row["reason"] == "pipeline_full" for row in totals)


async def test_client_report_outcomes(make_config):
    report = {"timestamp": 1.0, "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 3}]}
    body = serialize_envelope(Envelope({}, [Item({"type": "client_report"}, orjson.dumps(report))]))
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        response = await post(client, body)
        assert response.status_code == 200 and response.json() == {}
        await pipeline.flush()
    with pipeline.store.__class__(pipeline.config.storage.path) as store:
        totals = store.outcome_totals()
    assert {"project_id": 1, "outcome": "client_discard", "reason": "queue_overflow", "category": "error",
            "quantity": 3} in totals


async def test_disabled_key_is_refused_after_refresh(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        _, body = event_envelope()
        assert (await post(client, body)).status_code == 200
        await anyio.to_thread.run_sync(pipeline.store.set_key_active, KEY, False)
        _, body = event_envelope()
        # The store bumps its config version; the relay's watcher reloads within KEY_POLL.
        with anyio.fail_after(10):
            while (response := await post(client, body)).status_code == 200:
                await anyio.sleep(0.02)
        assert response.status_code == 403 and "disabled" in response.json()["detail"]
        await anyio.to_thread.run_sync(pipeline.store.set_key_active, KEY, True)
        with anyio.fail_after(10):
            while (response := await post(client, body)).status_code == 403:
                await anyio.sleep(0.02)
        assert response.status_code == 200


async def test_project_created_while_running_is_served(make_config):
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        project_id, key = await anyio.to_thread.run_sync(pipeline.store.create_project, "fresh")
        event_id, body = event_envelope()
        with anyio.fail_after(10):
            while (response := await post(client, body, path=f"/api/{project_id}/envelope/",
                                          headers={"X-Sentry-Auth": f"Sentry sentry_key={key}"})).status_code == 403:
                await anyio.sleep(0.02)
        assert response.status_code == 200
        assert event_id in await stored_ids(pipeline)


async def test_refused_requests_count_invalid_outcomes_only_when_authenticated(make_config):
    config = make_config(limits={"max_event_bytes": 1000})
    async with running_pipeline(config) as pipeline, client_for(pipeline) as client:
        assert (await post(client, b"not an envelope")).status_code == 400
        _, big = event_envelope(message="x" * 5000)
        assert (await post(client, big)).status_code == 413
        # Without a valid key nothing is counted, whatever the URL claims.
        assert (await post(client, b"junk", headers={})).status_code == 400
        assert (await post(client, b"junk", headers={"X-Sentry-Auth": f"Sentry sentry_key={OTHER_KEY}"})).status_code == 403
    # Leaving the pipeline writes the outcomes still pending.
    with pipeline.store.__class__(config.storage.path) as store:
        totals = store.outcome_totals()
    invalid = sorted((row["reason"], row["quantity"]) for row in totals if row["outcome"] == "invalid")
    assert invalid == [("invalid_envelope", 1), ("too_large", 1)]


def test_normalizer_cache_is_bounded(monkeypatch):
    from minisentry import normalizer

    monkeypatch.setattr(normalizer, "MAX_CACHED_NORMALIZERS", 3)
    monkeypatch.setattr(normalizer._local, "normalizers", {}, raising=False)
    for project_id in range(1, 4):
        normalizer.normalizer_for(project_id)
    assert len(normalizer._local.normalizers) == 3
    first = normalizer.normalizer_for(1)  # already cached: the same object
    assert first is normalizer._local.normalizers[1]
    normalizer.normalizer_for(99)  # at the limit: the cache starts over with just the new project
    assert list(normalizer._local.normalizers) == [99]


async def test_attachment_limits_per_envelope(make_config):
    config = make_config(limits={"max_attachments_per_envelope": 2, "max_attachments_bytes": 1000})
    async with running_pipeline(config) as pipeline, client_for(pipeline) as client:
        three = [Item({"type": "attachment", "filename": f"{i}.txt"}, b"x") for i in range(3)]
        _, body = event_envelope(extra_items=three)
        response = await post(client, body)
        assert response.status_code == 413 and "attachments" in response.json()["detail"]
        big = [Item({"type": "attachment", "filename": "big.bin"}, b"x" * 1001)]
        _, body = event_envelope(extra_items=big)
        assert (await post(client, body)).status_code == 413
        event_id, body = event_envelope(extra_items=three[:2])
        assert (await post(client, body)).status_code == 200
        await pipeline.flush()
        assert len(await anyio.to_thread.run_sync(pipeline.store.list_attachments, event_id)) == 2


async def test_minidump_parsing_runs_beside_the_event_loop_two_at_a_time(make_config):
    """At the limit of two uploads parsing at once, a third waits its turn; envelopes keep flowing."""
    dump = b"MDMP\x93\xa7\x00\x00" + bytes(range(256))
    release = threading.Event()
    inside: list[int] = []
    lock = threading.Lock()
    most = [0]
    async with running_pipeline(make_config()) as pipeline, client_for(pipeline) as client:
        parse = pipeline.relay._parse

        def slow_parse(body, endpoint, content_type=None):
            if endpoint == "minidump":
                with lock:
                    inside.append(1)
                    most[0] = max(most[0], len(inside))
                release.wait(10)  # a worker thread: the event loop is not held
                with lock:
                    inside.pop()
            return parse(body, endpoint, content_type)

        pipeline.relay._parse = slow_parse
        statuses: list[int] = []

        async def upload() -> None:
            response = await client.post("/api/1/minidump/", params={"sentry_key": KEY},
                                         files={"upload_file_minidump": ("crash.dmp", dump)})
            statuses.append(response.status_code)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(upload)
                while len(inside) < 2:
                    await anyio.sleep(0.01)
                await anyio.sleep(0.2)
                assert len(inside) == 2  # the third upload waits for a slot
                event_id, body = event_envelope()
                assert (await post(client, body)).status_code == 200  # the front door still answers
                release.set()
        assert statuses == [200, 200, 200] and most[0] == 2
        assert event_id in await stored_ids(pipeline)
