"""The plugin host: built-ins, third-party plugins, duplicate names, broken plugins, the CLI listing."""

from __future__ import annotations

import sys
from importlib import metadata

import anyio
import pytest
from click.testing import CliRunner

from minisentry import hookimpl
from minisentry.backends.memory import MemoryChannel
from minisentry.cli import cli
from minisentry.errors import PluginError
from minisentry.plugin_manager import DEFAULT_PLUGINS, collect, describe_plugins, make_plugin_manager

from ..conftest import running_pipeline


class CountingChannels:
    """A third-party channel backend: memory channels that count how many were built."""

    name = "counting"

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, name: str, capacity: int) -> MemoryChannel:
        self.built.append(name)
        return MemoryChannel(name, capacity)


class CountingPlugin:
    def __init__(self) -> None:
        self.backend = CountingChannels()

    @hookimpl
    def minisentry_register_channel_backends(self):
        return [self.backend]


def test_fresh_manager_has_the_builtins():
    pm = make_plugin_manager(entry_points=False)
    assert [name for name, _ in pm.list_name_plugin()] == list(DEFAULT_PLUGINS)
    assert set(collect(pm, "minisentry_register_channel_backends")) == {"memory", "kafka"}
    assert set(collect(pm, "minisentry_register_stores")) == {"sqlite"}
    other = make_plugin_manager(entry_points=False)
    assert other is not pm and other.get_plugins() is not pm.get_plugins()


def test_pipeline_uses_a_plugin_backend(make_config):
    plugin = CountingPlugin()
    pm = make_plugin_manager(entry_points=False, extra=(plugin,))

    async def main():
        from minisentry import Pipeline

        async with Pipeline(make_config(channels={"backend": "counting"}), http=False, plugin_manager=pm):
            pass

    anyio.run(main)
    assert plugin.backend.built == ["ingest", "symbolicate", "symbolicate_slow", "process", "store"]


def test_duplicate_names_name_both_plugins():
    class Clash:
        @hookimpl
        def minisentry_register_channel_backends(self):
            backend = CountingChannels()
            backend.name = "memory"
            return [backend]

    pm = make_plugin_manager(entry_points=False, extra=(Clash(),))
    with pytest.raises(PluginError, match="'memory' registered by both"):
        collect(pm, "minisentry_register_channel_backends")


def test_plugin_raising_or_unnamed_is_a_plugin_error():
    class Raises:
        @hookimpl
        def minisentry_register_stores(self):
            raise RuntimeError("cannot connect")

    class Unnamed:
        @hookimpl
        def minisentry_register_stores(self):
            return [object()]

    with pytest.raises(PluginError, match="failed in minisentry_register_stores: cannot connect"):
        collect(make_plugin_manager(entry_points=False, extra=(Raises(),)), "minisentry_register_stores")
    with pytest.raises(PluginError, match="without a name"):
        collect(make_plugin_manager(entry_points=False, extra=(Unnamed(),)), "minisentry_register_stores")


def test_unknown_hook_is_refused():
    class Typo:
        @hookimpl
        def minisentry_register_chanels(self):
            return []

    with pytest.raises(PluginError, match="unknown hook"):
        make_plugin_manager(entry_points=False, extra=(Typo(),))


def test_entry_point_plugins_load_and_broken_ones_are_named(monkeypatch, tmp_path):
    package = tmp_path / "ms_demo_plugin.py"
    package.write_text(
        "from minisentry import hookimpl\n"
        "@hookimpl\n"
        "def minisentry_register_commands(cli):\n"
        "    import click\n"
        "    @cli.command('hello')\n"
        "    def hello():\n"
        "        click.echo('hello from a plugin')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    good = metadata.EntryPoint(name="demo", value="ms_demo_plugin", group="minisentry")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [good] if group == "minisentry" else [])
    pm = make_plugin_manager()
    assert pm.has_plugin("demo")
    info = {i.name: i for i in describe_plugins(pm)}
    assert info["demo"].hooks == ("minisentry_register_commands",)

    broken = metadata.EntryPoint(name="broken", value="ms_no_such_module", group="minisentry")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [broken])
    with pytest.raises(PluginError, match="plugin 'broken'"):
        make_plugin_manager()
    sys.modules.pop("ms_demo_plugin", None)


def test_load_plugins_env_picks_the_entry_point_plugins(monkeypatch, tmp_path, caplog):
    for name in ("ms_env_a", "ms_env_b"):
        (tmp_path / f"{name}.py").write_text("from minisentry import hookimpl\n"
                                             "@hookimpl\n"
                                             "def minisentry_register_commands(cli):\n"
                                             "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [metadata.EntryPoint(name=name, value=f"ms_env_{name}", group="minisentry") for name in ("a", "b")]
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: points if group == "minisentry" else [])
    assert make_plugin_manager().has_plugin("a") and make_plugin_manager().has_plugin("b")
    monkeypatch.setenv("MINISENTRY_LOAD_PLUGINS", " b , nosuch")
    with caplog.at_level("WARNING", logger="minisentry.plugins"):
        pm = make_plugin_manager()
    assert "MINISENTRY_LOAD_PLUGINS names plugins that are not installed: nosuch" in caplog.text
    assert pm.has_plugin("b") and not pm.has_plugin("a")
    assert pm.has_plugin("minisentry.plugins.sqlite_store")  # built-ins always load
    monkeypatch.setenv("MINISENTRY_LOAD_PLUGINS", "")
    pm = make_plugin_manager()
    assert not pm.has_plugin("a") and not pm.has_plugin("b")
    # A broken plugin that is not asked for is not even imported.
    broken = metadata.EntryPoint(name="broken", value="ms_no_such_module", group="minisentry")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [broken])
    make_plugin_manager()
    for name in ("ms_env_a", "ms_env_b"):
        sys.modules.pop(name, None)


def test_plugins_command_lists_hooks():
    result = CliRunner().invoke(cli, ["plugins"], obj={"pm": make_plugin_manager(entry_points=False)})
    assert result.exit_code == 0
    assert "minisentry.plugins.sqlite_store" in result.output
    assert "minisentry_register_channel_backends" in result.output
