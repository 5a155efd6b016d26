"""The deploy item type: parsing (fuzzed), storage (idempotent), the issue-page panel and the plugin's registration."""

from __future__ import annotations

import orjson
import pytest
import sqlite_utils
from hypothesis import given, strategies as st

from minisentry.errors import InvalidItem
from minisentry.messages import PluginRecord
from minisentry.plugin_items import PluginItems
from minisentry.plugin_manager import make_plugin_manager
from minisentry.web.html import Markup
from minisentry.web.panels import collect_panels
from minisentry_deploys import plugin
from minisentry_deploys.panel import DeploysPanel
from minisentry_deploys.plugin import DeployItems, parse_deploy


def test_a_marker_is_parsed():
    record = parse_deploy(b'{"release": "a@1", "timestamp": "2024-05-01T10:00:00Z", "url": "https://ci/x"}')
    assert record["release"] == "a@1" and record["environment"] == "production"
    assert record["timestamp"] == 1714557600.0 and len(record["id"]) == 32


@pytest.mark.parametrize("body, reason", [
    (b"nope", "invalid_deploy"), (b"[]", "invalid_deploy"), (b"{}", "invalid_deploy_release"),
    (b'{"release": "a", "url": "ftp://x"}', "invalid_deploy_url"),
    (b'{"release": "a", "timestamp": "yesterday"}', "invalid_deploy_timestamp"),
    (b'{"release": "a", "environment": 7}', "invalid_deploy_environment"),
])
def test_bad_markers_name_the_field(body, reason):
    with pytest.raises(InvalidItem) as info:
        parse_deploy(body)
    assert info.value.reason == reason


@given(st.one_of(st.binary(max_size=300), st.dictionaries(
    st.sampled_from(["release", "environment", "timestamp", "url"]),
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(-2**63, 2**63 - 1), st.text(max_size=50)),
).map(orjson.dumps)))
def test_parse_never_fails_other_than_invalid_item(body):
    try:
        record = parse_deploy(body)
    except InvalidItem:
        return
    orjson.dumps(record)  # the record crosses Kafka as JSON


def test_store_is_idempotent(tmp_path):
    db = sqlite_utils.Database(tmp_path / "s.sqlite")
    kind = DeployItems()
    kind.migrate(db)
    kind.migrate(db)
    record = parse_deploy(b'{"release": "a@1", "timestamp": 1700000000}')
    records = [PluginRecord(1, "deploy", 1700000001.0, record, record["id"])] * 2
    kind.store(db, records)
    kind.store(db, records)
    assert db["plugin_deploys"].count == 1


def test_registers_the_item_type_and_endpoint():
    items = PluginItems.collect(make_plugin_manager(entry_points=False, extra=(plugin,)))
    assert items.types["deploy"].max_bytes == 4096 and items.endpoints["deploys"].item_type == "deploy"


def _store_deploys(db, project_id, *markers):
    kind = DeployItems()
    kind.migrate(db)
    records = [parse_deploy(orjson.dumps(marker)) for marker in markers]
    kind.store(db, [PluginRecord(project_id, "deploy", 1.0, r, r["id"]) for r in records])


def test_panel_names_the_deploy_before_first_seen_and_escapes_values(tmp_path):
    db = sqlite_utils.Database(tmp_path / "s.sqlite")
    _store_deploys(db, 1, {"release": "shop@1", "timestamp": 1000}, {"release": "shop@2", "timestamp": 2000,
                                                                    "environment": "<script>x</script>"},
                   {"release": "shop@3", "timestamp": 3000})
    _store_deploys(db, 2, {"release": "other@9", "timestamp": 2500})
    html = DeploysPanel().render({"id": 7, "project_id": 1, "first_seen": 2500.0}, db)
    assert isinstance(html, Markup)
    assert "First seen after deploy <strong>shop@2</strong> (&lt;script&gt;x&lt;/script&gt;, 1970-01-01 00:33:20 UTC)" in html
    assert "<script>" not in html and "other@9" not in html
    table = html.split("<table", 1)[1]
    assert table.index("shop@3") < table.index("shop@2") < table.index("shop@1")  # newest first


def test_panel_without_deploys_says_so(tmp_path):
    db = sqlite_utils.Database(tmp_path / "s.sqlite")  # not even the table: no server wrote it yet
    html = DeploysPanel().render({"id": 1, "project_id": 1, "first_seen": 10.0}, db)
    assert "No deploy of this project before" in html


def test_registers_the_panel():
    panels = collect_panels(make_plugin_manager(entry_points=False, extra=(plugin,)))
    assert list(panels) == ["deploys"] and panels["deploys"].title == "Deploys"
