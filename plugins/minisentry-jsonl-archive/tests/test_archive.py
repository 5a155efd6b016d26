"""The archive stays within its bounds: rotation, backups, oversized events."""

from __future__ import annotations

import json

import pytest

from minisentry.plugin_items import run_processors
from minisentry.plugin_manager import make_plugin_manager
from minisentry_jsonl_archive import plugin
from minisentry_jsonl_archive.archive import JsonlArchive


def test_rotates_and_keeps_at_most_backups(tmp_path):
    archive = JsonlArchive(tmp_path / "a.jsonl", max_bytes=1000, backups=2)
    for n in range(200):
        archive.append(1, {"event_id": f"{n:032x}", "message": "x" * 50})
    files = archive.files()
    assert [f.name for f in files] == ["a.jsonl", "a.jsonl.1", "a.jsonl.2"]
    assert all(f.stat().st_size <= 1000 for f in files)
    last = json.loads(files[0].read_text().splitlines()[-1])
    assert last["event_id"] == f"{199:032x}"


def test_an_event_over_the_limit_leaves_a_stub(tmp_path):
    archive = JsonlArchive(tmp_path / "a.jsonl", max_bytes=300, backups=0)
    archive.append(1, {"event_id": "e1", "message": "x" * 1000})
    line = json.loads((tmp_path / "a.jsonl").read_text())
    assert line == {"project_id": 1, "event_id": "e1", "truncated": True, "bytes": line["bytes"]}


def test_bad_limits_are_refused(tmp_path):
    with pytest.raises(ValueError):
        JsonlArchive(tmp_path / "a", max_bytes=10)


def test_hook_appends_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MINISENTRY_JSONL_ARCHIVE", str(tmp_path / "env.jsonl"))
    monkeypatch.setattr(plugin, "_archive", [])
    pm = make_plugin_manager(entry_points=False, extra=(plugin,))
    event = {"event_id": "abc"}
    run_processors(pm.hook, 3, event)
    assert "errors" not in event
    assert json.loads((tmp_path / "env.jsonl").read_text()) == {"project_id": 3, "event_id": "abc"}
