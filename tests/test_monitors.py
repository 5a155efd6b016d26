"""Cron monitoring: schedules, check-in validation, missed/timeout detection, the HTTP and SDK paths."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import anyio
import httpx
import pytest
from sentry_sdk.crons import capture_checkin

from minisentry.backends.sqlite import SqliteStore
from minisentry.monitors import CheckIn, CheckInError, CheckInQueue, parse_check_in
from minisentry.schedules import ScheduleError, parse_schedule

from .conftest import KEY, running_pipeline
from .e2e.test_sdk import cli, close_sdk, init_sdk, wait_for


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("expression, tz, after, expected", [
    ("0 * * * *", "UTC", ts(2026, 11, 26, 20, 13), ts(2026, 11, 26, 21, 0)),
    ("*/15 9-17 * * mon-fri", "Europe/Vienna", ts(2026, 11, 26, 20, 13), ts(2026, 11, 27, 8, 0)),
    ("0 0 29 feb *", "UTC", ts(2026, 11, 26), ts(2028, 2, 29)),
    ("0 0 1 * sun", "UTC", ts(2026, 11, 26), ts(2026, 11, 29)),  # both day fields: either matches
    ("30 2 * * *", "UTC", ts(2026, 11, 26, 2, 30), ts(2026, 11, 27, 2, 30)),  # strictly after
])
def test_crontab_next(expression, tz, after, expected):
    assert parse_schedule({"type": "crontab", "value": expression}, tz).next_after(after) == expected


def test_intervals_and_errors():
    assert parse_schedule({"type": "interval", "value": 10, "unit": "minute"}).next_after(0) == 600
    assert parse_schedule({"type": "interval", "value": 1, "unit": "month"}).next_after(ts(2026, 1, 31)) == ts(2026, 2, 28)
    for raw, message in [({"type": "crontab", "value": "0 0 30 2 *"}, "never fires"),
                         ({"type": "crontab", "value": "61 * * * *"}, "out of range"),
                         ({"type": "crontab", "value": "* * *"}, "5 fields"),
                         ({"type": "interval", "value": 0, "unit": "day"}, "positive"),
                         ({"type": "weekly"}, "unknown schedule type")]:
        with pytest.raises(ScheduleError, match=message):
            parse_schedule(raw)
    with pytest.raises(ScheduleError, match="time zone"):
        parse_schedule({"type": "interval", "value": 1, "unit": "day"}, "Mars/Olympus")


def test_check_in_validation_and_queue_bound():
    ok = parse_check_in(1, {"monitor_slug": "Nightly", "status": "ok", "duration": 1.5}, 100.0)
    assert ok.monitor_slug == "nightly" and ok.duration == 1.5 and len(ok.check_in_id) == 32
    for payload, message in [({"status": "ok"}, "monitor_slug"), ({"monitor_slug": "x", "status": "done"}, "status"),
                             ({"monitor_slug": "x", "status": "ok", "check_in_id": "nope"}, "UUID"),
                             ({"monitor_slug": "x", "status": "ok", "monitor_config": {"schedule": {}}}, "schedule")]:
        with pytest.raises(CheckInError, match=message):
            parse_check_in(1, payload, 0.0)
    queue = CheckInQueue(limit=1)
    assert queue.put(ok) and not queue.put(ok)
    assert queue.take() == [ok] and len(queue) == 0


def test_missed_and_timeout_detection(tmp_path):
    config = {"schedule": {"type": "interval", "value": 10, "unit": "minute"}, "timezone": "UTC",
              "checkin_margin": 1, "max_runtime": 5}
    with SqliteStore(tmp_path / "s.sqlite") as store:
        store.record_check_ins([CheckIn(1, uuid.uuid4().hex, "sync", "in_progress", 0.0, config=config)])
        assert store.detect_missed(60.0) == 0  # nothing due yet
        # 10 min + 1 min margin after the check-in, the expected one is missed; the running one timed out.
        assert store.detect_missed(11 * 60 + 1) == 2
        (monitor,) = store.list_monitors()
        assert monitor["status"] == "missed" and monitor["next_expected"] == 20 * 60
        assert sorted(c["status"] for c in monitor["recent"]) == ["missed", "timeout"]
        assert store.detect_missed(11 * 60 + 2) == 0  # idempotent until the next expected time


@pytest.mark.anyio
async def test_http_check_ins_and_the_monitor_clock(make_config):
    config = make_config(stages={"monitor_check_interval": 0.1})
    async with running_pipeline(config) as pipeline:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pipeline.port}") as client:
            url = f"/api/1/cron/backup/{KEY}/"
            started = await client.post(url, params={"status": "in_progress"}, json={"monitor_config": {
                "schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5}})
            assert started.status_code == 202
            check_in_id = started.json()["id"]
            done = await client.get(url, params={"status": "ok", "check_in_id": check_in_id})
            assert done.status_code == 202
            assert (await client.get(url, params={"status": "finished"})).status_code == 400
            assert (await client.get(f"/api/1/cron/backup/{'9' * 32}/", params={"status": "ok"})).status_code == 403
            await pipeline.flush()
        with anyio.fail_after(10):
            while not (monitors := await anyio.to_thread.run_sync(pipeline.store.list_monitors)) or \
                    monitors[0]["recent"][0]["status"] != "ok":
                await anyio.sleep(0.05)
        assert monitors[0]["status"] == "ok" and monitors[0]["recent"][0]["duration"] is not None
        # A monitor whose expected check-in is long overdue is marked missed by the running clock.
        overdue = CheckIn(1, uuid.uuid4().hex, "hourly", "ok", time.time() - 3 * 3600,
                          config={"schedule": {"type": "crontab", "value": "0 * * * *"}, "timezone": "UTC",
                                  "checkin_margin": 1, "max_runtime": None})
        await anyio.to_thread.run_sync(pipeline.store.record_check_ins, [overdue])
        with anyio.fail_after(10):
            while {m["slug"]: m["status"] for m in await anyio.to_thread.run_sync(pipeline.store.list_monitors)
                   }.get("hourly") != "missed":
                await anyio.sleep(0.05)


def test_real_sdk_check_ins(server_factory):
    server = server_factory()
    init_sdk(server.dsn())
    config = {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "checkin_margin": 2, "max_runtime": 10}
    check_in_id = capture_checkin(monitor_slug="nightly-report", status="in_progress", monitor_config=config)
    capture_checkin(monitor_slug="nightly-report", check_in_id=check_in_id, status="error", duration=3.2)
    close_sdk()

    def listed():
        rows = json.loads(cli(server.config_path, "monitors", "--json").stdout or "[]")
        return rows if rows and rows[0]["recent"] and rows[0]["recent"][0]["status"] == "error" else None

    (monitor,) = wait_for(listed, timeout=30)
    assert monitor["slug"] == "nightly-report" and monitor["status"] == "error"
    assert monitor["config"]["schedule"]["value"] == "*/5 * * * *" and monitor["recent"][0]["duration"] == 3.2
    assert "nightly-report" in cli(server.config_path, "monitors").stdout
