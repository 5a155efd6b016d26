"""Per-project settings pushed with the CLI while the real server runs, seen by the real sentry-sdk.

Two projects on one server (with a process worker, so the settings must reach the worker
processes too): project A (``demo``) gets a filter, a PII rule and a quota through ``minisentry
projects settings set``; project B (``other``) keeps the config file's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentry_sdk

from ..conftest import OTHER_KEY, base_config
from .test_sdk import cli, close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e

PII_CONFIG = json.dumps({
    "rules": {"order-secret": {"type": "pattern", "pattern": "TOPSECRET-[A-Z0-9-]+",
                               "redaction": {"method": "replace", "text": "[order-secret]"}}},
    "applications": {"$string": ["order-secret"]},
})


def outcomes(server) -> list[dict]:
    return json.loads(cli(server.config_path, "outcomes", "--json").stdout)


def total(server, project: int, outcome: str, category: str = "error", reason: str | None = None) -> int:
    return sum(r["quantity"] for r in outcomes(server) if r["project_id"] == project and r["outcome"] == outcome
               and r["category"] == category and (reason is None or r["reason"] == reason))


def store_bytes(tmp_path: Path) -> bytes:
    """Every byte SQLite wrote for the store: the file and its WAL."""
    return b"".join(path.read_bytes() for path in sorted(tmp_path.glob("store.sqlite*")))


def set_section(server, tmp_path: Path, project: str, section: str, text: str):
    path = tmp_path / f"{project}-{section}.toml"
    path.write_text(text)
    return cli(server.config_path, "projects", "settings", "set", project, section, str(path))


def send(dsn: str, *messages: str, extra: dict | None = None) -> None:
    init_sdk(dsn)
    for message in messages:
        with sentry_sdk.new_scope() as scope:
            for key, value in (extra or {}).items():
                scope.set_extra(key, value)
            sentry_sdk.capture_message(message, level="error")
    close_sdk()


def test_settings_pushed_to_a_running_server_change_project_a_only(tmp_path, server_factory):
    server = server_factory(base_config(tmp_path, stages={"process_workers": 1}))
    dsn_a, dsn_b = server.dsn(), server.dsn(OTHER_KEY, 2)
    send(dsn_a, "ignore me: before the settings")
    wait_for(lambda: total(server, 1, "accepted") == 1, timeout=30)

    # Scrubbing first: once the filter (written second) is seen to act, both are loaded.
    done = set_section(server, tmp_path, "demo", "scrubbing", f"[scrubbing]\npii_config = '''{PII_CONFIG}'''\n")
    assert done.returncode == 0, done.stderr
    done = set_section(server, tmp_path, "demo", "filters", '[filters]\nerror_messages = ["*ignore me*"]\n')
    assert done.returncode == 0, done.stderr

    def filtered_after_probe() -> bool:
        send(dsn_a, "ignore me: probe")
        return total(server, 1, "filtered", reason="error-message") > 0

    wait_for(filtered_after_probe, timeout=20)
    accepted_a = total(server, 1, "accepted")
    send(dsn_a, "ignore me: dropped for A", "order TOPSECRET-A-7731 placed", extra={"note": "TOPSECRET-A-7731"})
    send(dsn_b, "ignore me: B keeps this", "order TOPSECRET-B-4242 placed", extra={"note": "TOPSECRET-B-4242"})
    wait_for(lambda: total(server, 1, "accepted") == accepted_a + 1 and total(server, 2, "accepted") == 2, timeout=30)
    wait_for(lambda: total(server, 1, "filtered", reason="error-message") >= 2, timeout=30)
    stored = store_bytes(tmp_path)
    assert b"TOPSECRET-A-7731" not in stored and b"[order-secret]" in stored
    assert b"TOPSECRET-B-4242" in stored and b"ignore me: B keeps this" in stored
    assert total(server, 2, "filtered") == 0

    # A bad value is refused, naming the key, and the server keeps the previous settings.
    before = json.loads(cli(server.config_path, "projects", "settings", "show", "demo", "--json").stdout)
    refused = set_section(server, tmp_path, "demo", "filters", '[filters]\nerror_messages = ["[unclosed"]\n')
    assert refused.returncode != 0 and "filters.error_messages[0]" in refused.stderr
    refused = set_section(server, tmp_path, "demo", "quotas",
                          '[[quotas]]\nid = "a"\ncategories = ["error"]\nlimit = -1\nwindow = 60\n')
    assert refused.returncode != 0 and "quotas[0].limit" in refused.stderr
    after = json.loads(cli(server.config_path, "projects", "settings", "show", "demo", "--json").stdout)
    assert after == before
    filtered = total(server, 1, "filtered", reason="error-message")
    send(dsn_a, "ignore me: still filtered")
    wait_for(lambda: total(server, 1, "filtered", reason="error-message") == filtered + 1, timeout=30)

    # A quota of 2 errors an hour for A: the SDK is answered 429 and stops sending errors.
    done = set_section(server, tmp_path, "demo", "quotas", '[[quotas]]\nid = "a-errors"\ncategories = ["error"]\n'
                                                           'limit = 2\nwindow = 3600\nreason_code = "a_quota"\n')
    assert done.returncode == 0, done.stderr

    def limited_after_probe() -> bool:
        init_sdk(dsn_a)
        sentry_sdk.capture_message("counted against the quota", level="error")
        sentry_sdk.flush(timeout=5)
        blocked = "error" in sentry_sdk.get_client().transport._disabled_until
        close_sdk()
        return blocked

    wait_for(limited_after_probe, timeout=30)
    wait_for(lambda: total(server, 1, "rate_limited", reason="a_quota") >= 1, timeout=30)
    init_sdk(dsn_b)
    for index in range(5):
        sentry_sdk.capture_message(f"B is not limited {index}", level="error")
    sentry_sdk.flush(timeout=5)
    assert not sentry_sdk.get_client().transport._disabled_until
    close_sdk()
    wait_for(lambda: total(server, 2, "accepted") == 7, timeout=30)
    assert total(server, 2, "rate_limited") == 0

    # Clearing A's quota lifts it (the file has none).
    done = cli(server.config_path, "projects", "settings", "clear", "demo", "quotas")
    assert done.returncode == 0, done.stderr

    def accepted_after_probe() -> bool:
        before = total(server, 1, "accepted")
        send(dsn_a, "after clearing the quota")
        return wait_for(lambda: total(server, 1, "accepted") + total(server, 1, "rate_limited") > before) and \
            total(server, 1, "accepted") > before

    wait_for(accepted_after_probe, timeout=30)
