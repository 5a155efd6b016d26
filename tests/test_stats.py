"""Outcome statistics over time: stats_v2 shape, CLI and API."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from click.testing import CliRunner

from minisentry.backends.sqlite import SqliteStore
from minisentry.cli import cli
from minisentry.errors import BadRequest
from minisentry.outcomes import Outcome, OutcomeRow
from minisentry.plugin_manager import make_plugin_manager
from minisentry.stats import stats_v2

from .conftest import TOKEN, base_config, running_pipeline, write_config

NOW = int(time.time())  # the CLI and API use the real clock


def filled(path):
    store = SqliteStore(path).open()
    store.seed_projects([type("P", (), {"id": 1, "slug": "demo", "keys": []})()])
    store.write_batch([], [
        OutcomeRow(NOW - 7200, 1, Outcome.ACCEPTED, "", "error", 5),
        OutcomeRow(NOW - 60, 1, Outcome.ACCEPTED, "", "error", 2),
        OutcomeRow(NOW - 60, 1, Outcome.FILTERED, "web-crawlers", "error", 3),
        OutcomeRow(NOW - 60, 2, Outcome.RATE_LIMITED, "too_many", "transaction", 4),
        OutcomeRow(NOW - 100 * 86400, 1, Outcome.ACCEPTED, "", "error", 99),  # outside the period
    ])
    return store


def test_series_and_totals(tmp_path):
    with filled(tmp_path / "s.sqlite") as store:
        result = stats_v2(store, interval="1h", period="24h", group_by=("outcome", "category"), now=NOW)
        assert len(result["intervals"]) == 24 and result["end"] > result["start"]
        groups = {tuple(g["by"].values()): g for g in result["groups"]}
        assert groups[("accepted", "error")]["totals"]["sum(quantity)"] == 7
        assert sum(1 for q in groups[("accepted", "error")]["series"]["sum(quantity)"] if q) == 2
        assert groups[("filtered", "error")]["totals"]["sum(quantity)"] == 3
        only_one = stats_v2(store, group_by=("reason",), project_ids=[2], now=NOW)
        assert [g["by"] for g in only_one["groups"]] == [{"reason": "too_many"}]
        for bad in ({"interval": "1x"}, {"interval": "10s"}, {"group_by": ("nope",)},
                    {"interval": "1m", "period": "52w"}):
            with pytest.raises(BadRequest):
                stats_v2(store, now=NOW, **bad)


def test_cli_and_api(tmp_path, make_config):
    import anyio

    config_path = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    filled(tmp_path / "store.sqlite").close()
    result = CliRunner().invoke(cli, ["--config", str(config_path), "stats", "--period", "52w", "--interval", "1d",
                                      "--json"], obj={"pm": make_plugin_manager(entry_points=False)})
    assert result.exit_code == 0, result.output
    totals = {tuple(g["by"].values()): g["totals"]["sum(quantity)"] for g in json.loads(result.output)["groups"]}
    assert totals[("rate_limited", "transaction")] == 4

    async def api():
        async with running_pipeline(make_config()) as pipeline:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
                auth = {"Authorization": f"Bearer {TOKEN}"}
                ok = await client.get("/api/0/organizations/acme/stats_v2/", headers=auth, params=[
                    ("field", "sum(quantity)"), ("groupBy", "outcome"), ("statsPeriod", "52w"), ("interval", "1d")])
                assert ok.status_code == 200
                assert {g["by"]["outcome"] for g in ok.json()["groups"]} >= {"accepted", "filtered", "rate_limited"}
                bad = await client.get("/api/0/organizations/acme/stats_v2/", headers=auth, params={"interval": "x"})
                assert bad.status_code == 400
                assert (await client.get("/api/0/organizations/acme/stats_v2/")).status_code == 401

    anyio.run(api)
