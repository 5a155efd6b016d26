"""Log and span containers: item_count checked, logs kept (real SDK), spans counted."""

from __future__ import annotations

import json

import orjson
import pytest
from sentry_sdk import logger as sentry_logger
from hypothesis import given
from hypothesis import strategies as st

from minisentry.envelope import Envelope, Item, serialize_envelope
from minisentry.logs import ContainerError, container_items, parse_logs

from .conftest import KEY
from .e2e.test_sdk import cli, close_sdk, init_sdk, wait_for


def test_item_count_is_checked():
    payload = orjson.dumps({"items": [{"body": "a"}, {"body": "b"}]})
    assert len(container_items({"item_count": 2}, payload)) == 2
    with pytest.raises(ContainerError, match="item_count says 3"):
        container_items({"item_count": 3}, payload)
    with pytest.raises(ContainerError, match="no items"):
        container_items({}, b'{"version": 2}')


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_fuzz_containers(value):
    try:
        items = container_items({"item_count": 1}, orjson.dumps({"items": value}))
    except ContainerError:
        return
    parse_logs(1, items, 0.0)


def test_real_sdk_logs_stored_and_bad_containers_counted(server_factory):
    import httpx

    server = server_factory()
    init_sdk(server.dsn(), enable_logs=True)
    sentry_logger.warning("disk {pct}% full", pct=91)
    sentry_logger.info("user signed in")
    sentry_logger.error("payment with card {card} failed", card=" ".join(["4111"] * 4))
    close_sdk()

    def logs():
        rows = json.loads(cli(server.config_path, "logs", "--json").stdout or "[]")
        return rows if len(rows) == 3 else None

    rows = {row["level"]: row for row in wait_for(logs, timeout=30)}
    # Scrubbed like events: the card number is neither in the body nor in the attributes.
    assert " ".join(["4111"] * 4) not in json.dumps(rows["error"])
    assert rows["error"]["body"].startswith("payment with card")
    assert rows["warn"]["body"] == "disk 91% full" and rows["info"]["body"] == "user signed in"
    assert any("91" in json.dumps(value) for value in rows["warn"]["attributes"].values())

    wrong = Item({"type": "log", "item_count": 5}, orjson.dumps({"items": [{"body": "x"}]}))
    spans = Item({"type": "span", "item_count": 2}, orjson.dumps({"items": [{}, {}]}))
    response = httpx.post(f"{server.url}/api/1/envelope/", content=serialize_envelope(Envelope({}, [wrong, spans])),
                          headers={"X-Sentry-Auth": f"Sentry sentry_key={KEY}"})
    assert response.status_code == 200

    def counted():
        rows = json.loads(cli(server.config_path, "outcomes", "--json").stdout)
        got = {(r["outcome"], r["reason"], r["category"]): r["quantity"] for r in rows}
        return got if ("invalid", "invalid_item_count", "log_item") in got else None

    outcomes = wait_for(counted, timeout=30)
    assert outcomes[("invalid", "invalid_item_count", "log_item")] == 5
    assert outcomes[("filtered", "unsupported_item_type", "span")] == 2
    assert outcomes[("accepted", "", "log_item")] == 3
