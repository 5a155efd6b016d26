"""Browser CSP reports become events grouped by directive and blocked host."""

from __future__ import annotations

import anyio
import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minisentry.errors import BadRequest
from minisentry.security import csp_events

from ..conftest import KEY, running_pipeline

pytestmark = pytest.mark.anyio


def classic(blocked: str, directive: str = "script-src-elem") -> bytes:
    return orjson.dumps({"csp-report": {"document-uri": "https://shop.example/cart", "referrer": "",
                                        "violated-directive": directive, "effective-directive": directive,
                                        "original-policy": "script-src 'self'", "blocked-uri": blocked}})


async def test_reports_become_grouped_issues(make_config):
    reporting_api = orjson.dumps([{"type": "csp-violation", "age": 10, "url": "https://shop.example/",
                                   "body": {"documentURL": "https://shop.example/", "effectiveDirective": "img-src",
                                            "blockedURL": "https://tracker.example/pixel.gif"}},
                                  {"type": "deprecation", "body": {}}])
    async with running_pipeline(make_config()) as pipeline:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            for blocked in ("https://evil.example/a.js", "https://evil.example/b.js"):
                response = await client.post("/api/1/security/", params={"sentry_key": KEY}, content=classic(blocked),
                                             headers={"Content-Type": "application/csp-report"})
                assert response.status_code == 201
            response = await client.post("/api/1/csp-report", params={"sentry_key": KEY}, content=reporting_api,
                                         headers={"Content-Type": "application/reports+json"})
            assert response.status_code == 201
            assert (await client.post("/api/1/security/", content=classic("x"))).status_code == 401
            bad = await client.post("/api/1/security/", params={"sentry_key": KEY}, content=b'{"not": "csp"}')
            assert bad.status_code == 400 and "CSP" in bad.json()["detail"]
        await pipeline.flush()
        issues = await anyio.to_thread.run_sync(pipeline.store.list_issues)
        totals = await anyio.to_thread.run_sync(pipeline.store.outcome_totals)
    by_title = {issue["title"]: issue["count"] for issue in issues}
    assert by_title == {"Blocked 'script' from 'evil.example'": 2, "Blocked 'image' from 'tracker.example'": 1}
    assert {"project_id": 1, "outcome": "accepted", "reason": "", "category": "security", "quantity": 3} in totals


@given(st.binary(max_size=300))
def test_fuzz_only_bad_request(body):
    try:
        csp_events(body, None)
    except BadRequest:
        pass
