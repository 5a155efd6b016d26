"""Per-project settings: parsing with the file's parsers, merging over the file, the bounded cache, reloads."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minisentry.backends.sqlite import SqliteStore
from minisentry.cli_settings import read_section
from minisentry.errors import ConfigError, NotFound
from minisentry.filters import FilterSettings
from minisentry.project_settings import ProjectSettings, parse_section
from minisentry.quotas import Quota
from minisentry.scrubbing import ScrubbingSettings

FILE_QUOTA = Quota(id="file-errors", categories=("error",), limit=100, window=60)


def make(stored=None, **kwargs) -> ProjectSettings:
    view = ProjectSettings(filters=FilterSettings(localhost=True, error_messages=("*file*",)),
                           scrubbing=ScrubbingSettings(sensitive_fields=("file_field",)), quotas=(FILE_QUOTA,),
                           load=lambda: stored or {}, **kwargs)
    view.reload()
    return view


def test_a_project_without_settings_gets_the_file_sections_themselves():
    view = make({2: {"filters": {"releases": ["*-dev"]}}})
    assert view.filters_of(1) is view.defaults["filters"]
    assert view.scrubbing_of(2) is view.defaults["scrubbing"]
    assert view.quotas_of(1) == (FILE_QUOTA,)


def test_filters_and_scrubbing_merge_over_the_file_key_by_key():
    view = make({1: {"filters": {"error_messages": ["*mine*"], "web_crawlers": False},
                     "scrubbing": {"safe_fields": ["order_id"]}}})
    filters = view.filters_of(1)
    assert filters.error_messages == ("*mine*",)  # a list replaces the whole list
    assert filters.web_crawlers is False
    assert filters.localhost is True  # left out: the file's value
    scrubbing = view.scrubbing_of(1)
    assert scrubbing.sensitive_fields == ("file_field",) and scrubbing.safe_fields == ("order_id",)


def test_quotas_are_added_and_bound_to_the_project():
    view = make({3: {"quotas": [{"id": "mine", "categories": ["error"], "limit": 1, "window": 60}]}})
    file_quota, own = view.quotas_of(3)
    assert file_quota == FILE_QUOTA and own.project == 3 and own.limit == 1
    assert own.matches(3, None) and not own.matches(4, None)
    assert view.any_quotas


@pytest.mark.parametrize(("section", "raw", "named"), [
    ("filters", {"error_mesages": ["x"]}, "filters.error_mesages"),
    ("filters", {"error_messages": ["[x"]}, "filters.error_messages[0]"),
    ("filters", {"localhost": "yes"}, "filters.localhost"),
    ("filters", ["not", "a", "table"], "filters must be a table"),
    ("scrubbing", {"enabled": 1}, "scrubbing.enabled"),
    ("scrubbing", {"pii_config": {"rules": {}, "applications": {"$string": ["nope"]}}}, "scrubbing.pii_config"),
    ("quotas", {"id": "x"}, "'quotas' must be an array"),
    ("quotas", [{"id": "x", "categories": ["error"], "limit": -1, "window": 60}], "quotas[0].limit"),
    ("quotas", [{"id": "x", "categories": ["error"], "limit": 1}], "quotas[0] is missing required key(s) window"),
    ("quotas", [{"id": "x", "limit": 0, "project": 9}], "quotas[0].project must be 1"),
    ("quotas", [{"id": "x", "limit": 0, "scope": "organization"}], "quotas[0].scope"),
    ("quotas", [{"id": "file-errors", "limit": 0}], "quotas[0].id 'file-errors' is already used"),
    ("owners", {}, "unknown section 'owners'"),
])
def test_bad_sections_are_refused_naming_the_key(section, raw, named):
    with pytest.raises(ConfigError) as info:
        parse_section(section, raw, project_id=1, label="project 'demo'", file_quota_ids=frozenset({"file-errors"}))
    assert named in str(info.value) and str(info.value).startswith("project 'demo': ")


def test_an_invalid_stored_section_falls_back_to_the_file(caplog):
    view = make({1: {"filters": {"error_messages": ["[x"]}, "scrubbing": {"safe_fields": ["ok"]}}})
    assert view.filters_of(1) is view.defaults["filters"]
    assert view.scrubbing_of(1).safe_fields == ("ok",)
    assert "stored filters of project 1 is invalid" in caplog.text


def test_compiled_cache_is_bounded_and_reload_drops_only_changed_sections():
    stored = {pid: {"filters": {"releases": [f"r{pid}"]}} for pid in range(1, 11)}
    view = make(stored, max_compiled=4)
    for pid in range(1, 11):
        assert view.filters_of(pid).releases == (f"r{pid}",)
    assert len(view._compiled) == 4
    kept = view.filters_of(10)
    view.replace({**stored, 9: {"filters": {"releases": ["new"]}}})
    assert view.filters_of(10) is kept  # unchanged: still compiled
    assert view.filters_of(9).releases == ("new",)
    view.replace({})
    assert view.filters_of(10) is view.defaults["filters"] and not view._compiled


def test_sqlite_store_keeps_sections_and_bumps_the_config_version(tmp_path):
    with SqliteStore(tmp_path / "s.sqlite") as store:
        project_id, _ = store.create_project("demo")
        version = store.config_version()
        assert store.set_project_setting(project_id, "filters", {"releases": ["*-dev"]})
        assert store.config_version() > version
        version = store.config_version()
        assert not store.set_project_setting(project_id, "filters", {"releases": ["*-dev"]})
        assert store.config_version() == version  # nothing changed, nothing bumped
        assert store.project_settings() == {project_id: {"filters": {"releases": ["*-dev"]}}}
        assert store.set_project_setting(project_id, "filters", None)
        assert store.project_settings(project_id) == {}
        with pytest.raises(NotFound):
            store.set_project_setting(999, "filters", {})


@pytest.mark.anyio
async def test_watch_applies_a_stored_change(tmp_path):
    with SqliteStore(tmp_path / "s.sqlite") as store:
        project_id, _ = store.create_project("demo")
        view = ProjectSettings(filters=FilterSettings(), scrubbing=ScrubbingSettings(), quotas=(),
                               load=store.project_settings)
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: view.watch(store.config_version, interval=0.01,
                                                          task_status=task_status))
            assert view.filters_of(project_id).releases == ()
            store.set_project_setting(project_id, "filters", {"releases": ["*-dev"]})
            with anyio.fail_after(10):
                while view.filters_of(project_id).releases != ("*-dev",):
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(section=st.sampled_from(["filters", "scrubbing", "quotas"]), raw=toml_values)
def test_fuzz_any_stored_value_parses_or_is_refused_with_config_error(section, raw):
    try:
        parse_section(section, raw, project_id=1, label="p")
    except ConfigError as exc:
        assert str(exc).startswith("p: ")


@settings(max_examples=300, deadline=None)
@given(section=st.sampled_from(["filters", "scrubbing", "quotas"]), text=st.text(max_size=200))
def test_fuzz_any_settings_file_is_read_or_refused_with_config_error(section, text):
    try:
        read_section(text, section, "f.toml")
    except ConfigError as exc:
        assert str(exc).startswith("f.toml: ")
