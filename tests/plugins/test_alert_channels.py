"""A plugin alert channel through ``minisentry_register_alert_channels``, in a real Pipeline.

The test plugin adds a ``memo`` channel that keeps the alerts it gets in a list named by its target,
checks its targets, and one that raises (a bug in a channel: logged, counted, the worker goes on).
"""

from __future__ import annotations

import uuid

import anyio
import pytest

from minisentry import Pipeline, hookimpl
from minisentry.errors import ConfigError, PluginError
from minisentry.plugin_manager import collect, make_plugin_manager

from ..test_pipeline import error_envelope

pytestmark = pytest.mark.anyio
DELIVERED: dict[str, list] = {}


class MemoChannel:
    type = "memo"

    def validate_target(self, target):
        if set(target) != {"type", "bucket"} or not isinstance(target["bucket"], str):
            raise ValueError(".bucket: a memo target needs a bucket name (and nothing else)")

    async def deliver(self, alert, target):
        DELIVERED.setdefault(target["bucket"], []).append(alert)


class BrokenChannel:
    type = "broken"

    async def deliver(self, alert, target):
        raise RuntimeError("channel bug")


class MemoPlugin:
    @hookimpl
    def minisentry_register_alert_channels(self):
        return [MemoChannel(), BrokenChannel()]


def config_with(make_config, *targets):
    return make_config(alerts={"poll_interval": 0.05, "rules": [
        {"name": "memo", "on": ["new_issue"], "targets": list(targets)}]})


def test_built_in_channels_come_through_the_hook():
    channels = collect(make_plugin_manager(entry_points=False), "minisentry_register_alert_channels", key="type")
    assert sorted(channels) == ["email", "slack", "webhook"]


async def test_a_plugin_channel_receives_alerts_and_a_broken_one_does_not_stop_them(make_config):
    pm = make_plugin_manager(entry_points=False, extra=(MemoPlugin(),))
    bucket = uuid.uuid4().hex
    config = config_with(make_config, {"type": "broken"}, {"type": "memo", "bucket": bucket})
    async with Pipeline(config, http=False, plugin_manager=pm) as pipeline:
        await pipeline.submit(error_envelope(uuid.uuid4().hex), 1)
        with anyio.fail_after(15):
            while not DELIVERED.get(bucket):
                await anyio.sleep(0.02)
        (alert,) = DELIVERED[bucket]
        assert alert.kind == "new_issue" and alert.project == "demo" and alert.rule == "memo"
        assert alert.issue["title"].startswith("ValueError")
        with anyio.fail_after(15):  # the broken channel's delivery runs beside the memo one
            while pipeline.alerts.statistics()["failed"] != 1:
                await anyio.sleep(0.02)


async def test_plugin_targets_are_validated_at_startup(make_config):
    pm = make_plugin_manager(entry_points=False, extra=(MemoPlugin(),))
    with pytest.raises(ConfigError, match=r"alerts.rules\[0\].targets\[0\].bucket: a memo target needs a bucket"):
        async with Pipeline(config_with(make_config, {"type": "memo"}), http=False, plugin_manager=pm):
            pass
    with pytest.raises(ConfigError, match=r"targets\[0\].type: unknown alert channel 'pager' \(registered: "
                                          r"broken, email, memo, slack, webhook\)"):
        async with Pipeline(config_with(make_config, {"type": "pager"}), http=False, plugin_manager=pm):
            pass


async def test_two_channels_of_one_type_stop_startup(make_config):
    class Again:
        @hookimpl
        def minisentry_register_alert_channels(self):
            return [MemoChannel()]

    pm = make_plugin_manager(entry_points=False, extra=(MemoPlugin(), Again()))
    with pytest.raises(PluginError, match="'memo' registered by both"):
        async with Pipeline(config_with(make_config, {"type": "memo", "bucket": "x"}), http=False, plugin_manager=pm):
            pass
