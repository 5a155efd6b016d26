"""``minisentry projects settings set/show/clear`` through click's CliRunner, on a store in a temp dir."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from minisentry.backends.sqlite import SqliteStore
from minisentry.cli import cli
from minisentry.plugin_manager import make_plugin_manager

from .conftest import base_config, write_config


@pytest.fixture
def config_path(tmp_path):
    raw = base_config(tmp_path, filters={"localhost": True})
    raw["quotas"] = [{"id": "file-errors", "categories": ["error"], "limit": 100, "window": 60}]
    return write_config(tmp_path / "minisentry.toml", raw)


def run(config_path, *args, input=None):
    return CliRunner().invoke(cli, ["--config", str(config_path), "projects", "settings", *args],
                              obj={"pm": make_plugin_manager()}, input=input)


def stored(tmp_path) -> dict:
    with SqliteStore(tmp_path / "store.sqlite", readonly=True) as store:
        return store.project_settings()


def test_set_from_stdin_show_and_clear(config_path, tmp_path):
    result = run(config_path, "set", "demo", "filters", "-", input='[filters]\nerror_messages = ["*boom*"]\n')
    assert result.exit_code == 0, result.output
    assert stored(tmp_path) == {1: {"filters": {"error_messages": ["*boom*"]}}}
    shown = json.loads(run(config_path, "show", "demo", "--json").output)
    assert shown["stored"] == {"filters": {"error_messages": ["*boom*"]}}
    assert shown["effective"]["filters"]["error_messages"] == ["*boom*"]
    assert shown["effective"]["filters"]["localhost"] is True  # merged over the file's [filters]
    assert [q["id"] for q in shown["effective"]["quotas"]] == ["file-errors"]
    text = run(config_path, "show", "1").output
    assert "filters (own, merged over the config file's)" in text and "quotas (config file's)" in text
    assert run(config_path, "set", "demo", "filters", "-", input='error_messages = ["*boom*"]\n').output \
        == "No changes\n"
    result = run(config_path, "clear", "demo", "filters")
    assert result.exit_code == 0 and stored(tmp_path) == {}
    assert "has no filters of its own" in run(config_path, "clear", "demo", "filters").output


def test_quotas_file_is_written_as_in_the_config(config_path, tmp_path):
    path = tmp_path / "q.toml"
    path.write_text('[[quotas]]\nid = "mine"\ncategories = ["error"]\nlimit = 3\nwindow = 60\n')
    result = run(config_path, "set", "other", "quotas", str(path))
    assert result.exit_code == 0, result.output
    shown = json.loads(run(config_path, "show", "other", "--json").output)
    assert [(q["id"], q["project"]) for q in shown["effective"]["quotas"]] == [("file-errors", None), ("mine", 2)]


@pytest.mark.parametrize(("section", "text", "named"), [
    ("filters", '[filters]\nerror_messages = ["[x"]\n', "filters.error_messages[0]"),
    ("filters", '[filters]\nlocalhost = "yes"\n', "filters.localhost"),
    ("filters", '[filters]\nerror_messages = ["x"]\n[scrubbing]\nenabled = true\n', "unknown key 'scrubbing'"),
    ("scrubbing", "[scrubbing]\nsafe_fields = 3\n", "scrubbing.safe_fields"),
    ("quotas", '[[quotas]]\nid = "file-errors"\nlimit = 0\n', "quotas[0].id 'file-errors' is already used"),
    ("quotas", 'id = "a"\n', "no [[quotas]] tables"),
    ("filters", "error_messages = [\n", "not valid TOML"),
])
def test_bad_values_are_refused_naming_the_key_and_nothing_changes(config_path, tmp_path, section, text, named):
    assert run(config_path, "set", "demo", "filters", "-", input='releases = ["*-dev"]\n').exit_code == 0
    before = stored(tmp_path)
    result = run(config_path, "set", "demo", section, "-", input=text)
    assert result.exit_code != 0 and named in result.output, result.output
    assert stored(tmp_path) == before


def test_unknown_project_is_refused(config_path):
    result = run(config_path, "show", "nope")
    assert result.exit_code != 0 and "no project 'nope'" in result.output
