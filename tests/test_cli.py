"""The command line, through click's CliRunner, on a store filled by a real pipeline run."""

from __future__ import annotations

import json
import uuid

import anyio
import pytest
from click.testing import CliRunner

from minisentry.cli import cli
from minisentry.plugin_manager import make_plugin_manager

from .conftest import KEY, base_config, running_pipeline, write_config
from .test_pipeline import error_envelope


def run(config_path, *args):
    result = CliRunner().invoke(cli, ["--config", str(config_path), *args], obj={"pm": make_plugin_manager()})
    return result


@pytest.fixture
def filled(tmp_path, make_config):
    """A config file and a store holding two issues (3 + 1 events) and one message."""
    config_path = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    ids = [uuid.uuid4().hex for _ in range(4)]

    async def fill():
        async with running_pipeline(make_config(), http=False) as pipeline:
            for event_id in ids[:3]:
                await pipeline.submit(error_envelope(event_id), 1)
            await pipeline.submit(error_envelope(ids[3], exc_type="KeyError", function="lookup"), 2)

    anyio.run(fill)
    return config_path, ids


def test_issues_json_contract(filled):
    config_path, _ = filled
    result = run(config_path, "issues", "--json")
    assert result.exit_code == 0, result.output
    issues = json.loads(result.output)
    assert len(issues) == 2
    for issue in issues:
        assert {"id", "project", "title", "culprit", "level", "count", "first_seen", "last_seen"} <= set(issue)
        assert issue["first_seen"].endswith("Z")
    by_project = {issue["project"]: issue for issue in issues}
    assert by_project["demo"]["count"] == 3 and by_project["demo"]["title"].startswith("ValueError: ")
    assert by_project["other"]["culprit"] == "app.views in lookup"


def test_issues_filter_and_text(filled):
    config_path, _ = filled
    result = run(config_path, "issues", "--project", "other")
    assert result.exit_code == 0
    assert "KeyError" in result.output and "ValueError" not in result.output
    result = run(config_path, "issues", "--project", "nope")
    assert result.exit_code != 0 and "no project 'nope'" in result.output


def test_events_show(filled):
    config_path, ids = filled
    result = run(config_path, "events", "show", ids[0])
    assert result.exit_code == 0, result.output
    assert ids[0] in result.output and "ValueError" in result.output and "app.views in handler" in result.output
    result = run(config_path, "events", "show", "--json", str(uuid.UUID(ids[3])))
    assert json.loads(result.output)["data"]["exception"]["values"][0]["type"] == "KeyError"
    missing = run(config_path, "events", "show", uuid.uuid4().hex)
    assert missing.exit_code != 0 and "no event" in missing.output


def test_projects_create_and_list(filled):
    config_path, _ = filled
    created = run(config_path, "projects", "create", "mobile")
    assert created.exit_code == 0, created.output
    dsn = created.output.strip()
    assert dsn.startswith("http://") and dsn.endswith("@127.0.0.1:0/3")
    listed = json.loads(run(config_path, "projects", "list", "--json").output)
    assert [p["slug"] for p in listed] == ["demo", "other", "mobile"]
    assert listed[0]["dsns"] == [f"http://{KEY}@127.0.0.1:0/1"]
    assert dsn in listed[2]["dsns"]
    duplicate = run(config_path, "projects", "create", "mobile")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    bad = run(config_path, "projects", "create", "Not Valid")
    assert bad.exit_code != 0


def test_outcomes_and_plugins(filled):
    config_path, _ = filled
    outcomes = json.loads(run(config_path, "outcomes", "--json").output)
    assert {"project_id": 1, "outcome": "accepted", "reason": "", "category": "error", "quantity": 3} in outcomes
    plugins = run(config_path, "plugins")
    assert "minisentry.plugins.memory_channels" in plugins.output
    assert "minisentry_register_stores" in plugins.output


def test_config_check_reports_bad_key(tmp_path):
    good = write_config(tmp_path / "good.toml", base_config(tmp_path))
    assert run(good, "config", "check").exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("[storage]", "[storage]\npathh = 1"))
    result = run(bad, "config", "check")
    assert result.exit_code != 0 and "pathh" in result.output
    result = run(tmp_path / "missing.toml", "config", "check")
    assert result.exit_code != 0 and "not found" in result.output


def test_disable_and_enable_key(filled):
    config_path, _ = filled
    result = run(config_path, "projects", "disable-key", KEY)
    assert result.exit_code == 0 and "disabled" in result.output
    listed = json.loads(run(config_path, "projects", "list", "--json").output)
    assert listed[0]["keys"] == []
    assert run(config_path, "projects", "enable-key", KEY).exit_code == 0
    assert json.loads(run(config_path, "projects", "list", "--json").output)[0]["keys"] == [KEY]
    missing = run(config_path, "projects", "disable-key", "f" * 32)
    assert missing.exit_code != 0 and "no key" in missing.output
