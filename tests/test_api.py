"""The /api/0/ read API: Sentry's field names, bearer tokens, pagination."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .conftest import TOKEN, running_pipeline
from .test_pipeline import error_envelope

pytestmark = pytest.mark.anyio


async def test_issues_and_latest_event(make_config):
    ids = [uuid.uuid4().hex for _ in range(3)]
    async with running_pipeline(make_config()) as pipeline:
        for event_id in ids:
            await pipeline.submit(error_envelope(event_id), 1)
        await pipeline.submit(error_envelope(uuid.uuid4().hex, function="other"), 1)
        await pipeline.flush()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            response = await client.get("/api/0/projects/acme/demo/issues/", headers=auth)
            assert response.status_code == 200
            issues = response.json()
            assert len(issues) == 2
            first = next(i for i in issues if i["count"] == "3")
            assert first["project"]["slug"] == "demo"
            assert {"id", "shortId", "title", "culprit", "level", "status", "count", "firstSeen", "lastSeen",
                    "metadata"} <= set(first)
            assert first["status"] == "unresolved" and first["metadata"]["type"] == "ValueError"

            page = await client.get("/api/0/projects/acme/demo/issues/", params={"limit": 1}, headers=auth)
            assert len(page.json()) == 1
            assert 'rel="next"; results="true"' in page.headers["link"]
            nxt = await client.get("/api/0/projects/acme/demo/issues/", params={"limit": 1, "cursor": "0:1:0"},
                                   headers=auth)
            assert len(nxt.json()) == 1 and nxt.json()[0]["id"] != page.json()[0]["id"]
            assert 'rel="next"; results="false"' in nxt.headers["link"]

            latest = await client.get(f"/api/0/issues/{first['id']}/events/latest/", headers=auth)
            assert latest.status_code == 200
            event = latest.json()
            assert event["eventID"] in ids and event["groupID"] == first["id"]
            assert event["entries"][0]["type"] == "exception"

            assert (await client.get("/api/0/issues/999/events/latest/", headers=auth)).status_code == 404
            assert (await client.get("/api/0/projects/acme/nope/issues/", headers=auth)).status_code == 404


async def test_api_refuses_without_valid_token(make_config):
    async with running_pipeline(make_config()) as pipeline:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            assert (await client.get("/api/0/projects/acme/demo/issues/")).status_code == 401
            wrong = await client.get("/api/0/projects/acme/demo/issues/", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403
            post = await client.post("/api/0/projects/acme/demo/issues/", headers={"Authorization": f"Bearer {TOKEN}"})
            assert post.status_code == 405
    async with running_pipeline(make_config(api={"tokens": []})) as pipeline:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            response = await client.get("/api/0/projects/acme/demo/issues/", headers={"Authorization": "Bearer x"})
            assert response.status_code == 403
