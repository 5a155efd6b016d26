"""A plugin's read-API route (``minisentry_register_api_routes``) over real HTTP: auth, answers, isolation."""

from __future__ import annotations

import httpx
import pytest

from minisentry import Pipeline, hookimpl
from minisentry.errors import NotFound
from minisentry.plugin_manager import make_plugin_manager

from ..conftest import TOKEN

pytestmark = pytest.mark.anyio


class Echo:
    """GET /api/0/plugins/echo/<path>?...: the path, the query and a count of projects; raises on request."""

    name = "echo"

    def get(self, db, path, query):
        if path == "missing":
            raise NotFound("nothing here")
        if path == "crash":
            raise ValueError("a bug in the plugin")
        return {"path": path, "query": query, "projects": db.execute("SELECT COUNT(*) FROM projects").fetchone()[0]}


class Plugin:
    @hookimpl
    def minisentry_register_api_routes(self):
        return [Echo()]


async def test_plugin_routes_answer_behind_the_token_and_a_crash_is_one_500(make_config):
    pm = make_plugin_manager(entry_points=False, extra=(Plugin(),))
    async with Pipeline(make_config(), plugin_manager=pm) as pipeline:
        base = f"http://127.0.0.1:{pipeline.port}/api/0/plugins/echo"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{base}/a/b/?x=1", headers=auth)
            assert answer.status_code == 200
            assert answer.json() == {"path": "a/b", "query": {"x": "1"}, "projects": 2}
            assert (await client.get(f"{base}/a/")).status_code == 401
            assert (await client.get(f"{base}/a/", headers={"Authorization": "Bearer wrong"})).status_code == 403
            missing = await client.get(f"{base}/missing", headers=auth)
            assert missing.status_code == 404 and missing.json() == {"detail": "nothing here"}
            assert (await client.get(f"{base}/crash", headers=auth)).status_code == 500
            assert (await client.post(f"{base}/a/", headers=auth)).status_code == 405
            # The server goes on serving after the plugin's bug.
            assert (await client.get(f"{base}/again", headers=auth)).json()["path"] == "again"
