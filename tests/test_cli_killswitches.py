"""``minisentry killswitches list/pull/push`` through click's CliRunner, on a store in a temp dir."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minisentry.backends.sqlite import SqliteStore
from minisentry.cli import cli
from minisentry.killswitches import SWITCHES
from minisentry.plugin_manager import make_plugin_manager

from .conftest import base_config, write_config

GOOD = '[{"project_id": 1}, {"project_id": 2, "platform": "native"}]'
PREVIEW = ("Before:\n"
           "<disabled entirely>\n"
           "After:\n"
           "DROP DATA WHERE (project_id = 1) OR (project_id = 2 AND platform = 'native')\n")


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path / "minisentry.toml", base_config(tmp_path))


@pytest.fixture
def stored(tmp_path):
    """Read the kill-switch values the CLI wrote (none when it did not even create the store)."""

    def read() -> dict:
        if not (tmp_path / "store.sqlite").exists():
            return {}
        with SqliteStore(tmp_path / "store.sqlite", readonly=True) as store:
            return store.killswitch_values()

    return read


def run(config_path, *args, input=None):
    return CliRunner().invoke(cli, ["--config", str(config_path), "killswitches", *args],
                              obj={"pm": make_plugin_manager()}, input=input)


def write(tmp_path, text: str, name: str = "value.json"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_list_shows_every_switch_disabled(config_path):
    result = run(config_path, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3 * len(SWITCHES)
    for index, (name, switch) in enumerate(SWITCHES.items()):
        assert lines[3 * index] == f"{name} ({switch.stage}): {switch.doc}"
        assert lines[3 * index + 1] == f"  fields: {', '.join(switch.fields)}"
        assert lines[3 * index + 2] == "  <disabled entirely>"


def test_list_describes_stored_values_and_flags_bad_ones(config_path, tmp_path):
    assert run(config_path, "list").exit_code == 0  # creates the store
    with SqliteStore(tmp_path / "store.sqlite") as store:
        store.set_killswitch("skip_issue_creation", [{"level": "info"}])
        store.set_killswitch("drop_before_parsing", [{"project_id": "one"}])
        store.set_killswitch("from_the_future", [])
    result = run(config_path, "list")
    assert result.exit_code == 0, result.output
    assert "  SKIP ISSUE CREATION WHERE (level = 'info')\n" in result.output
    assert ("  <invalid stored value, ignored by the server: drop_before_parsing: condition 1 of 1: "
            "field 'project_id' must be a positive integer, got string \"one\">\n") in result.output
    assert result.output.endswith("from_the_future: unknown kill-switch in the store (ignored)\n")


def test_a_pulled_file_pushes_back_as_no_changes(config_path, tmp_path, stored):
    path = tmp_path / "pulled.json"
    result = run(config_path, "pull", "drop_after_parsing", str(path))
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote drop_after_parsing to {path}: <disabled entirely>\n"
    text = path.read_text()
    assert text.startswith("# Kill-switch drop_after_parsing (checked in the ingest stage)\n")
    assert "#   has_attachments  " in text and text.endswith("\n[]\n")
    result = run(config_path, "push", "drop_after_parsing", str(path))
    assert (result.exit_code, result.output) == (0, "No changes\n")
    assert stored() == {}


def test_push_previews_and_n_changes_nothing(config_path, tmp_path, stored):
    result = run(config_path, "push", "drop_after_parsing", write(tmp_path, GOOD), input="n\n")
    assert result.exit_code == 1
    assert result.output == PREVIEW + "Should the changes be applied? [y/N]: n\nAborted!\n"
    assert stored() == {}


def test_push_y_stores_and_the_same_push_is_no_change(config_path, tmp_path, stored):
    path = write(tmp_path, GOOD)
    result = run(config_path, "push", "drop_after_parsing", path, input="y\n")
    assert result.exit_code == 0, result.output
    assert result.output == (PREVIEW + "Should the changes be applied? [y/N]: y\n"
                             "Applied; a running server follows within a second.\n")
    assert stored() == {"drop_after_parsing": [{"project_id": 1}, {"project_id": 2, "platform": "native"}]}
    result = run(config_path, "push", "drop_after_parsing", path)
    assert (result.exit_code, result.output) == (0, "No changes\n")

    pulled = tmp_path / "pulled.json"
    assert run(config_path, "pull", "drop_after_parsing", str(pulled)).exit_code == 0
    assert "# Current value: DROP DATA WHERE (project_id = 1) OR (project_id = 2 AND platform = 'native')\n" \
        in pulled.read_text()
    result = run(config_path, "push", "drop_after_parsing", str(pulled))
    assert (result.exit_code, result.output) == (0, "No changes\n")


def test_push_yes_skips_the_prompt_and_can_disable(config_path, tmp_path, stored):
    result = run(config_path, "push", "--yes", "skip_processing", write(tmp_path, '[{"platform": "native"}]'))
    assert result.exit_code == 0, result.output
    assert result.output == ("Before:\n<disabled entirely>\nAfter:\nSKIP PROCESSING WHERE (platform = 'native')\n"
                             "Applied; a running server follows within a second.\n")
    result = run(config_path, "push", "skip_processing", write(tmp_path, "# off\n[]\n"), "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Before:\nSKIP PROCESSING WHERE (platform = 'native')\nAfter:\n"
                                    "<disabled entirely>\n")
    assert stored() == {"skip_processing": []}


def test_push_notes_conditions_that_match_nothing(config_path, tmp_path, stored):
    text = '[{}, {"project_id": null, "platform": null}]'
    result = run(config_path, "push", "--yes", "drop_before_save", write(tmp_path, text))
    assert result.output == ("Note: condition 1 has no non-null field; it matches nothing and is left out.\n"
                             "Note: condition 2 has no non-null field; it matches nothing and is left out.\n"
                             "No changes\n")
    assert stored() == {}


@pytest.mark.parametrize(("text", "message"), [
    ('[{"platfrom": "native"}]', "drop_after_parsing: condition 1 of 1: unknown field 'platfrom'; "
                                 "allowed: project_id, event_id, event_type, platform, release, has_attachments"),
    ('[{"project_id": 1}, {"project_id": "2"}]',
     "drop_after_parsing: condition 2 of 2: field 'project_id' must be a positive integer, got string \"2\""),
    ('{"project_id": 1}', "drop_after_parsing: the value must be a list of conditions, got object"),
    ('# comment\n[{"project_id": 1]\n', "{path}: line 2 column 18: Expecting ',' delimiter"),
])
def test_push_refuses_an_invalid_file_precisely(config_path, tmp_path, stored, text, message):
    path = write(tmp_path, text)
    result = run(config_path, "push", "--yes", "drop_after_parsing", path)
    assert result.exit_code == 1
    assert result.output == f"Error: {message.format(path=path)}\n"
    assert stored() == {}


def test_unknown_switch_names_are_refused(config_path, tmp_path):
    for args in (["pull", "drop_all", str(tmp_path / "x.json")], ["push", "drop_all", write(tmp_path, "[]")]):
        result = run(config_path, *args)
        assert result.exit_code == 2
        assert "Invalid value for NAME: unknown kill-switch 'drop_all'; known: drop_before_parsing," in result.output
    assert not (tmp_path / "x.json").exists()


def test_push_of_a_missing_file_is_an_error(config_path, tmp_path):
    result = run(config_path, "push", "drop_after_parsing", str(tmp_path / "missing.json"))
    assert result.exit_code == 1 and f"Error: cannot read {tmp_path / 'missing.json'}: " in result.output
