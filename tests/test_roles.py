"""``serve --role``: which stage combinations are refused, and why, before anything starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minisentry import Pipeline
from minisentry.cli import cli
from minisentry.errors import ConfigError
from minisentry.plugin_manager import make_plugin_manager

from . import services
from .conftest import base_config, write_config


def serve(config_path, *args):
    return CliRunner().invoke(cli, ["--config", str(config_path), "serve", "--port", "0", *args],
                              obj={"pm": make_plugin_manager()})


def test_an_unknown_role_is_refused_with_the_choices(tmp_path):
    result = serve(write_config(tmp_path / "m.toml", base_config(tmp_path)), "--role", "ingest,cook")
    assert result.exit_code == 2
    assert "unknown role 'cook' (choose from all, relay, ingest, symbolicate, process, store)" in result.output


def test_a_subset_of_stages_needs_channels_that_cross_processes(tmp_path):
    result = serve(write_config(tmp_path / "m.toml", base_config(tmp_path)), "--role", "process")
    assert result.exit_code == 1
    assert ("--role process needs channels that cross processes (channels.backend = 'kafka'); "
            "'memory' lives in one process") in result.output


def test_kafka_roles_need_a_shared_payload_store(tmp_path):
    raw = {**base_config(tmp_path), "channels": {"backend": "kafka"},
           "kafka": {"bootstrap_servers": "127.0.0.1:1"}}
    result = serve(write_config(tmp_path / "m.toml", raw), "--role", "ingest", "--role", "symbolicate")
    assert result.exit_code == 1
    assert "needs a payload store every process shares ([backends] payloads = 'redis')" in result.output


@pytest.mark.anyio
async def test_all_means_every_stage_and_a_typo_is_a_config_error(make_config):
    assert Pipeline(make_config(), roles=("all",)).roles == {"relay", "ingest", "symbolicate", "process", "store"}
    with pytest.raises(ConfigError, match=r"unknown role\(s\) proces"):
        Pipeline(make_config(), roles=("proces",))


def test_an_unreachable_kafka_stops_startup_with_its_address(tmp_path):
    services.require_module("confluent_kafka")  # the kafka extra: `make test` installs it
    raw = {**base_config(tmp_path), "channels": {"backend": "kafka"}, "kafka": {"bootstrap_servers": "127.0.0.1:1"}}
    result = serve(write_config(tmp_path / "m.toml", raw))
    assert result.exit_code == 1
    assert "kafka at 127.0.0.1:1 is unreachable" in result.output
