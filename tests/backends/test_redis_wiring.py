"""How the backends are chosen and wired: [redis]/[backends] config, plugins, the Pipeline, the CLI.

The Redis tests use the real Redis (skipped locally without it, failing under CI=true); two
Pipelines in one test stand in for two relays sharing it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import services

from minisentry.backend_registry import open_backends, publish_change
from minisentry.cli import cli
from minisentry.config import config_from_dict
from minisentry.config_cache import MemoryConfigCache
from minisentry.errors import BackendError, ConfigError
from minisentry.fanout import MemoryFanout
from minisentry.payloads import MemoryPayloadStore
from minisentry.plugin_manager import make_plugin_manager
from minisentry.quota_counters import FailOpenCounters, MemoryQuotaCounters

from ..conftest import KEY, base_config, running_pipeline, write_config
from ..stages.test_relay import AUTH, event_envelope

ALL_REDIS = {"payloads": "redis", "quota_counters": "redis", "fanout": "redis", "config_cache": "redis"}


def test_by_default_every_backend_is_in_memory(make_config):
    backends = open_backends(make_config(), make_plugin_manager(entry_points=False))
    assert isinstance(backends.payloads, MemoryPayloadStore)
    assert isinstance(backends.quota_counters, MemoryQuotaCounters)  # per process: nothing to fail open
    assert isinstance(backends.fanout, MemoryFanout)
    assert isinstance(backends.config_cache, MemoryConfigCache)
    backends.close()


def test_memory_limits_come_from_the_backends_section(make_config):
    config = make_config(backends={"memory_max_payload_bytes": 1000, "memory_max_quota_keys": 7,
                                   "memory_max_configs": 3, "max_subscriptions": 2})
    backends = open_backends(config, make_plugin_manager(entry_points=False))
    assert backends.payloads.max_bytes == 1000 and backends.quota_counters.max_keys == 7
    assert backends.config_cache.max_entries == 3 and backends.fanout.subscribers.max_subscriptions == 2


@pytest.mark.parametrize("kind", ["payloads", "quota_counters", "fanout", "config_cache"])
def test_an_unknown_backend_name_lists_the_registered_ones(make_config, kind):
    with pytest.raises(ConfigError, match=rf"backends.{kind}: unknown backend 'kafka' \(registered: memory, redis\)"):
        open_backends(make_config(backends={kind: "kafka"}), make_plugin_manager(entry_points=False))


def test_redis_selected_without_a_url_is_a_config_error(make_config):
    with pytest.raises(ConfigError, match=r"\[redis\] url is not set"):
        open_backends(make_config(backends={"fanout": "redis"}), make_plugin_manager(entry_points=False))


def test_redis_selected_without_redis_py_says_what_to_install(make_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "minisentry.backends.redis_quotas", None)  # import fails
    config = make_config(redis={"url": "redis://127.0.0.1:1/0"}, backends={"quota_counters": "redis"})
    with pytest.raises(ConfigError, match=r"install minisentry\[redis\]"):
        open_backends(config, make_plugin_manager(entry_points=False))


def test_an_unreachable_redis_fails_at_startup_naming_the_url_without_the_password(make_config):
    services.require_module("redis")
    config = make_config(redis={"url": "redis://admin:s3cret-pw@127.0.0.1:1/0", "socket_timeout": 1.0},
                         backends={"quota_counters": "redis"})
    with pytest.raises(BackendError) as caught:
        open_backends(config, make_plugin_manager(entry_points=False))
    assert "redis://admin:***@127.0.0.1:1/0" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.anyio
async def test_a_pipeline_does_not_start_with_an_unreachable_redis(make_config):
    services.require_module("redis")
    config = make_config(redis={"url": "redis://127.0.0.1:1/0", "socket_timeout": 1.0}, backends={"fanout": "redis"})
    with pytest.raises(BackendError, match=r"Redis at redis://127.0.0.1:1/0: connect failed"):
        async with running_pipeline(config):
            pass


# -- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    ({"redis": {"urll": "redis://x"}}, "unknown key 'redis.urll'"),
    ({"backends": {"fan_out": "redis"}}, "unknown key 'backends.fan_out'"),
    ({"redis": {"url": "http://x"}}, "redis.url must start with redis://, rediss:// or unix://, got scheme 'http'"),
    ({"redis": {"url": "user:pw@host://x"}}, "got scheme '(unrecognised)'"),
    ({"redis": {"prefix": ""}}, "redis.prefix must be non-empty"),
    ({"redis": {"prefix": "a:"}}, "redis.prefix must be non-empty"),
    ({"redis": {"socket_timeout": 0}}, "redis.socket_timeout must be greater than 0"),
    ({"redis": {"quota_grace": -1}}, "redis.quota_grace must be >= 0"),
    ({"backends": {"payloads": ""}}, "backends.payloads must name a registered backend"),
    ({"backends": {"poll_interval": 0}}, "backends.poll_interval must be greater than 0"),
    ({"backends": {"max_subscriptions": 0}}, "backends.max_subscriptions must be greater than 0"),
    ({"backends": {"memory_max_payload_bytes": "1"}}, "backends.memory_max_payload_bytes must be int"),
])
def test_bad_redis_and_backends_settings_name_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert message in str(caught.value)


def test_the_redis_url_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINISENTRY_REDIS_URL", "redis://:pw@10.0.0.1:6379/2")
    config = config_from_dict({"redis": {"url": {"env": "MINISENTRY_REDIS_URL"}}})
    assert config.redis.url == "redis://:pw@10.0.0.1:6379/2"
    assert config.redis.prefix == "minisentry" and config.backends.quota_counters == "memory"


values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**9), st.floats(allow_nan=True),
                   st.text(max_size=30), st.lists(st.integers(), max_size=2))
sections = st.dictionaries(st.sampled_from(["url", "prefix", "socket_timeout", "max_payload_bytes", "quota_grace",
                                            "payloads", "fanout", "poll_interval", "max_subscriptions", "other"]),
                           values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(redis=sections, backends=sections)
def test_any_redis_and_backends_tables_load_or_raise_config_error(redis, backends):
    try:
        config = config_from_dict({"redis": redis, "backends": backends})
    except ConfigError:
        return
    assert config.redis.socket_timeout > 0 and config.backends.poll_interval > 0


# -- the Redis client's URL handling -----------------------------------------------------------------


def test_redact_url_hides_passwords_and_query_strings():
    redis_client = services.require_module("minisentry.backends.redis_client")
    redact = redis_client.redact_url
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert redact("redis://:pw@host/0") == "redis://:***@host/0"
    assert redact("redis://pw@host/0") == "redis://***@host/0"
    assert redact("rediss://host/0?password=pw") == "rediss://host/0?***"
    assert redact("redis://[::1") == "<unparseable Redis URL>"


@settings(max_examples=300, deadline=None)
@given(password=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@/?#[]"), min_size=4),
       garbage=st.text(max_size=60))
def test_redact_url_never_shows_the_password_and_never_raises(password, garbage):
    redis_client = services.require_module("minisentry.backends.redis_client")
    shown = redis_client.redact_url(f"redis://user:{password}@example.invalid:6379/0")
    if password not in "redis://user:***@example.invalid:6379/0":
        assert password not in shown
    assert isinstance(redis_client.redact_url(garbage), str)


@settings(max_examples=300, deadline=None)
@given(channel=st.one_of(st.binary(max_size=80), st.text(max_size=80), st.none(), st.integers()))
def test_topic_of_never_raises_and_returns_only_valid_topics(channel):
    redis_fanout = services.require_module("minisentry.backends.redis_fanout")
    topic = redis_fanout.topic_of(channel, "pre")
    assert topic is None or redis_fanout.check_topic(topic) == topic
    assert redis_fanout.topic_of(b"pre:fanout:projects", "pre") == "projects"
    assert redis_fanout.topic_of(b"other:fanout:projects", "pre") is None


# -- with the real Redis -----------------------------------------------------------------------------


def redis_config(make_config, tmp_path: Path, url: str, prefix: str, name: str, **sections):
    return make_config(storage={"path": str(tmp_path / f"{name}.sqlite")},
                       redis={"url": url, "prefix": prefix}, **sections)


@pytest.mark.services
def test_all_redis_backends_open_and_quota_counters_fail_open(make_config, tmp_path, redis_prefix):
    url, prefix = redis_prefix
    backends = open_backends(redis_config(make_config, tmp_path, url, prefix, "a", backends=ALL_REDIS),
                             make_plugin_manager(entry_points=False))
    try:
        assert {backends.payloads.name, backends.fanout.name, backends.config_cache.name} == {"redis"}
        assert isinstance(backends.quota_counters, FailOpenCounters)
        assert backends.quota_counters.counters.name == "redis"
    finally:
        backends.close()


@pytest.mark.services
@pytest.mark.anyio
async def test_two_relays_sharing_redis_accept_exactly_the_quota_together(make_config, tmp_path, redis_prefix):
    url, prefix = redis_prefix
    quota = {"id": "errors-per-hour", "categories": ["error"], "scope": "project", "limit": 5, "window": 3600,
             "reason_code": "too_many_errors"}
    configs = [redis_config(make_config, tmp_path, url, prefix, name, quotas=[quota],
                            backends={"quota_counters": "redis"}) for name in ("one", "two")]
    statuses = []
    async with running_pipeline(configs[0]) as one, running_pipeline(configs[1]) as two:
        async with httpx.AsyncClient(timeout=10) as client:
            for index in range(10):
                pipeline = (one, two)[index % 2]
                _, body = event_envelope()
                response = await client.post(f"http://127.0.0.1:{pipeline.port}/api/1/envelope/", content=body,
                                             headers=AUTH)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert re.fullmatch(r"\d+:error:project:too_many_errors",
                                        response.headers["X-Sentry-Rate-Limits"])
    assert statuses == [200] * 5 + [429] * 5


@pytest.mark.services
@pytest.mark.anyio
async def test_a_key_disabled_with_the_cli_is_refused_within_a_second_despite_a_30s_poll(
        make_config, tmp_path, redis_prefix):
    url, prefix = redis_prefix
    raw = base_config(tmp_path, redis={"url": url, "prefix": prefix},
                      backends={"fanout": "redis", "poll_interval": 30.0})
    config_path = write_config(tmp_path / "minisentry.toml", raw)
    config = config_from_dict(raw, base_dir=tmp_path)
    async with running_pipeline(config, http=False) as pipeline:
        keys = pipeline.relay.keys
        assert keys.known_project_of(KEY) == 1

        def disable() -> None:
            result = CliRunner().invoke(cli, ["--config", str(config_path), "projects", "disable-key", KEY],
                                        obj={"pm": make_plugin_manager(entry_points=False)})
            assert result.exit_code == 0, result.output
            assert "Warning" not in result.output

        await anyio.to_thread.run_sync(disable)
        with anyio.fail_after(1):
            while keys.known_project_of(KEY) is not None:
                await anyio.sleep(0.01)


def test_the_cli_warns_but_succeeds_when_the_fanout_cannot_publish(tmp_path):
    services.require_module("redis")
    raw = base_config(tmp_path, redis={"url": "redis://:pw@127.0.0.1:1/0", "socket_timeout": 1.0},
                      backends={"fanout": "redis"})
    config_path = write_config(tmp_path / "minisentry.toml", raw)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "projects", "create", "shop"],
                                obj={"pm": make_plugin_manager(entry_points=False)})
    assert result.exit_code == 0, result.output
    assert "/1" in result.output  # the DSN of the created project is still printed
    assert "Warning: running servers will see the change within 0.25s (poll)" in result.output
    assert ":pw@" not in result.output


def test_publish_change_with_the_memory_fanout_reaches_nobody_and_says_nothing(make_config):
    assert publish_change(make_config(), make_plugin_manager(entry_points=False), "projects") is None
