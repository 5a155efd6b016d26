"""Config loading and validation: every mistake is a ConfigError that names the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given as _given
from hypothesis import settings as _settings
from hypothesis import strategies as _st

from minisentry.config import Config, ProjectConfig, ServerConfig, StorageConfig, config_from_dict, load_config
from minisentry.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "minisentry.toml"
KEY_1 = "0123456789abcdef0123456789abcdef"
KEY_2 = "fedcba9876543210fedcba9876543210"


def config_error(raw: dict) -> str:
    """Validate ``raw``, expect a ConfigError, return its message with quotes removed."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, base_dir=Path("/srv"))
    return str(info.value).replace("'", "").replace('"', "")


def project(**fields) -> dict:
    return {"id": 1, "slug": "demo", "keys": [KEY_1], **fields}


# -- loading -------------------------------------------------------------------------------------


def test_the_repository_config_loads():
    config = load_config(REPO_CONFIG)
    assert config.source == REPO_CONFIG
    assert (config.server.host, config.server.port, config.server.backend) == ("127.0.0.1", 8000, "trio")
    assert config.storage.path == REPO_CONFIG.parent / "data" / "minisentry.sqlite"
    assert config.channels.capacity_of("process") == 2048
    assert config.stages.concurrency_of("process") == 2 and config.stages.process_workers == 2
    assert config.api.tokens == []
    assert config.projects == [ProjectConfig(id=1, slug="demo", keys=[KEY_1])]


def test_an_empty_config_is_all_defaults():
    config = config_from_dict({}, base_dir=Path("/srv"))
    assert config.server == ServerConfig()
    assert config.storage.path == Path("/srv/minisentry.sqlite")
    assert config.projects == [] and config.plugins == {}


def test_nested_tables_and_defaults():
    config = config_from_dict({
        "channels": {"capacity": 10, "capacities": {"store": 3}},
        "stages": {"concurrency": {"process": 4}, "retry_after": 5},
        "plugins": {"mine": {"option": [1, 2]}},
    })
    assert (config.channels.capacity_of("store"), config.channels.capacity_of("ingest")) == (3, 10)
    assert (config.stages.concurrency_of("process"), config.stages.concurrency_of("store")) == (4, 1)
    assert config.stages.retry_after == 5
    assert config.plugins == {"mine": {"option": [1, 2]}}


def test_int_is_accepted_for_a_float_setting():
    config = config_from_dict({"server": {"read_timeout": 5}})
    assert config.server.read_timeout == 5.0 and isinstance(config.server.read_timeout, float)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value)


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert "broken.toml" in str(info.value)


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_errors_from_a_file_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "conf.toml"
    path.write_text("[storage]\npathh = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value).replace("'", "")
    assert "conf.toml" in message and "storage.pathh" in message


# -- unknown keys and wrong types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"serverr": {}}, "serverr"),
        ({"source": "x"}, "source"),
        ({"storage": {"pathh": "x"}}, "storage.pathh"),
        ({"server": {"prot": 1}}, "server.prot"),
        ({"stages": {"concurrency": {"x": 1}}}, "stages.concurrency.x"),
        ({"channels": {"capacities": {"relay": 1}}}, "channels.capacities.relay"),
        ({"projects": [project(extra=1)]}, "projects[0].extra"),
    ],
)
def test_unknown_keys_are_named(raw, key):
    assert key in config_error(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"server": {"port": "8000"}}, "server.port"),
        ({"server": {"port": True}}, "server.port"),
        ({"server": {"port": 80.0}}, "server.port"),
        ({"server": {"host": 127}}, "server.host"),
        ({"server": {"read_timeout": "5s"}}, "server.read_timeout"),
        ({"server": {"read_timeout": False}}, "server.read_timeout"),
        ({"server": 5}, "server"),
        ({"storage": {"path": 5}}, "storage.path"),
        ({"api": {"tokens": "secret"}}, "api.tokens"),
        ({"api": {"tokens": ["ok", 2]}}, "api.tokens[1]"),
        ({"channels": {"capacities": {"store": "big"}}}, "channels.capacities.store"),
        ({"stages": {"concurrency": []}}, "stages.concurrency"),
        ({"plugins": ["x"]}, "plugins"),
        ({"projects": {"id": 1}}, "projects"),
        ({"projects": ["demo"]}, "projects[0]"),
        ({"projects": [project(id="1")]}, "projects[0].id"),
        ({"projects": [project(keys=KEY_1)]}, "projects[0].keys"),
    ],
)
def test_wrong_types_are_named(raw, key):
    assert key in config_error(raw)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"server": {"port": -1}}, "server.port"),
        ({"server": {"port": 65536}}, "server.port"),
        ({"server": {"backend": "gevent"}}, "server.backend"),
        ({"server": {"max_connections": 0}}, "server.max_connections"),
        ({"limits": {"max_event_bytes": -1}}, "limits.max_event_bytes"),
        ({"storage": {"batch_size": 0}}, "storage.batch_size"),
        ({"channels": {"capacity": 0}}, "channels.capacity"),
        ({"channels": {"capacities": {"store": 0}}}, "channels.capacities.store"),
        ({"stages": {"concurrency": {"process": 0}}}, "stages.concurrency.process"),
        ({"stages": {"concurrency": {"store": 2}}}, "stages.concurrency.store"),
        ({"stages": {"retry_after": 11}}, "stages.retry_after"),
        ({"stages": {"enqueue_timeout": 0}}, "stages.enqueue_timeout"),
    ],
)
def test_out_of_range_values_are_named(raw, key):
    assert key in config_error(raw)


@pytest.mark.parametrize("port", [0, 1, 65535])
def test_valid_ports(port):
    assert config_from_dict({"server": {"port": port}}).server.port == port


# -- projects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["xyz", KEY_1.upper(), KEY_1[:-1], KEY_1 + "0", "g" * 32, " " + KEY_1[1:]],
)
def test_bad_key_format_is_named(key):
    message = config_error({"projects": [project(keys=[key])]})
    assert "projects[0].keys" in message and key in message


def test_key_with_a_trailing_newline_is_refused():
    config_error({"projects": [project(keys=[KEY_1 + "\n"])]})


@pytest.mark.parametrize(
    ("projects", "key"),
    [
        ([project(), project(slug="other", keys=[KEY_2])], "projects[1].id"),
        ([project(), project(id=2, keys=[KEY_2])], "projects[1].slug"),
        ([project(), project(id=2, slug="other")], "projects[1].keys"),
        ([project(keys=[KEY_1, KEY_1])], "projects[0].keys"),
        ([project(id=0)], "projects[0].id"),
        ([project(slug="Demo")], "projects[0].slug"),
        ([project(slug="")], "projects[0].slug"),
    ],
)
def test_duplicate_or_invalid_projects_are_named(projects, key):
    assert key in config_error({"projects": projects})


@pytest.mark.parametrize("missing", ["id", "slug"])
def test_missing_required_project_keys_are_named(missing):
    raw = project()
    del raw[missing]
    message = config_error({"projects": [raw]})
    assert re.search(rf"projects\[0\] .*missing.*\b{missing}\b", message)


def test_project_keys_default_to_empty():
    assert config_from_dict({"projects": [{"id": 3, "slug": "p"}]}).projects == [ProjectConfig(id=3, slug="p")]


# -- environment variables -----------------------------------------------------------------------


def test_env_values_are_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MS_TEST_TOKEN", "from-env")
    monkeypatch.setenv("MS_TEST_HOST", "0.0.0.0")
    path = tmp_path / "conf.toml"
    path.write_text(
        '[server]\nhost = { env = "MS_TEST_HOST" }\n'
        '[api]\ntokens = ["literal", { env = "MS_TEST_TOKEN" }]\n'
    )
    config = load_config(path)
    assert config.server.host == "0.0.0.0"
    assert config.api.tokens == ["literal", "from-env"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"server": {"host": {"env": "MS_TEST_UNSET"}}}, "server.host"),
        ({"api": {"tokens": [{"env": "MS_TEST_UNSET"}]}}, "api.tokens"),
    ],
)
def test_unset_env_values_are_named(monkeypatch, raw, key):
    monkeypatch.delenv("MS_TEST_UNSET", raising=False)
    message = config_error(raw)
    assert key in message and "MS_TEST_UNSET" in message


def test_env_values_are_still_type_checked(monkeypatch):
    monkeypatch.setenv("MS_TEST_PORT", "8080")
    assert "server.port" in config_error({"server": {"port": {"env": "MS_TEST_PORT"}}})


def test_env_values_in_plugin_settings(monkeypatch):
    monkeypatch.setenv("MS_TEST_SECRET", "s3cret")
    config = config_from_dict({"plugins": {"mine": {"token": {"env": "MS_TEST_SECRET"}}}})
    assert config.plugins["mine"]["token"] == "s3cret"


# -- paths ---------------------------------------------------------------------------------------


def test_relative_storage_path_resolves_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "minisentry"
    folder.mkdir(parents=True)
    (folder / "conf.toml").write_text('[storage]\npath = "db/events.sqlite"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "etc" / "minisentry" / "conf.toml")
    assert config.storage.path == folder.resolve() / "db" / "events.sqlite"


def test_absolute_storage_path_is_kept(tmp_path):
    absolute = tmp_path / "abs.sqlite"
    assert config_from_dict({"storage": {"path": str(absolute)}}, base_dir=Path("/srv")).storage.path == absolute


def test_config_from_dict_resolves_against_base_dir():
    assert config_from_dict({"storage": {"path": "x.sqlite"}}, base_dir=Path("/srv")).storage.path == Path("/srv/x.sqlite")


# -- replace -------------------------------------------------------------------------------------


def test_replace_nested_fields_keeps_the_rest():
    config = config_from_dict({"server": {"host": "0.0.0.0", "port": 9000}, "projects": [project()]})
    changed = config.replace(server={"port": 0})
    assert (changed.server.host, changed.server.port) == ("0.0.0.0", 0)
    assert changed.projects == config.projects
    assert config.server.port == 9000  # the original is untouched


def test_replace_whole_sections():
    config = Config()
    storage = StorageConfig(path=Path("/tmp/other.sqlite"), batch_size=7)
    changed = config.replace(storage=storage, projects=[ProjectConfig(id=5, slug="p")])
    assert changed.storage is storage
    assert [p.id for p in changed.projects] == [5]
    assert config.projects == []


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config().server = ServerConfig()  # type: ignore[misc]


# -- fuzzing the loader: any TOML-shaped mapping is a Config or a ConfigError, nothing else ----------


_scalars = _st.one_of(_st.none(), _st.booleans(), _st.integers(-2, 70000), _st.floats(allow_nan=False),
                      _st.text(max_size=40))
_values = _st.recursive(_scalars, lambda inner: _st.one_of(_st.lists(inner, max_size=4),
                                                           _st.dictionaries(_st.text(max_size=12), inner, max_size=4)),
                        max_leaves=12)
_section_names = _st.sampled_from(["server", "limits", "storage", "channels", "stages", "api", "projects", "plugins",
                                   "bogus"])
_field_names = _st.sampled_from(["host", "port", "backend", "path", "capacity", "capacities", "concurrency",
                                 "tokens", "id", "slug", "keys", "max_event_bytes", "drain_timeout", "x"])


@_settings(max_examples=300, deadline=None)
@_given(_st.dictionaries(_section_names, _st.one_of(_values, _st.dictionaries(_field_names, _values, max_size=5),
                                                    _st.lists(_st.dictionaries(_field_names, _values, max_size=4),
                                                              max_size=3)),
                         max_size=4))
def test_fuzz_config_mappings_only_raise_config_error(raw):
    try:
        config_from_dict(raw)
    except ConfigError:
        pass


def test_quotas_are_read_and_checked():
    config = config_from_dict({"quotas": [{"id": "e", "categories": ["error"], "limit": 5, "window": 60}]})
    assert config.quotas[0].limit == 5 and config.quotas[0].categories == ("error",)
    with pytest.raises(ConfigError, match="limt"):
        config_from_dict({"quotas": [{"id": "e", "categories": ["error"], "limt": 5, "window": 60}]})
    with pytest.raises(ConfigError, match="quotas"):
        config_from_dict({"quotas": {"id": "e"}})
