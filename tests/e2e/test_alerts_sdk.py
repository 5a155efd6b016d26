"""Alerts end to end: the real sentry-sdk sends to a real ``minisentry serve``, alerts reach a real local
webhook receiver (generic and Slack-compatible) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sentry_sdk
from sentry_sdk.crons import capture_checkin

from minisentry.backends.sqlite import SqliteStore

from ..alerts.receivers import SmtpReceiver, WebhookReceiver
from ..conftest import ServerProcess, base_config, write_config
from .test_sdk import close_sdk, init_sdk, wait_for

pytestmark = pytest.mark.e2e


def alerts_toml(targets: list[str], *, smtp_port: int | None = None, on: str = '"new_issue", "regression"',
                extra: str = "") -> str:
    smtp = (f'[alerts.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
            f'from_address = "minisentry@example.com"\n') if smtp_port else ""
    return (f"[alerts]\npoll_interval = 0.1\nallow_private_addresses = true\nretry_initial = 0.05\n{extra}\n{smtp}"
            f'[[alerts.rules]]\nname = "ops"\non = [{on}, "monitor_failed"]\ntargets = [{", ".join(targets)}]\n')


@pytest.fixture
def start(tmp_path: Path):
    started: list[ServerProcess] = []

    def start_server(alerts: str) -> ServerProcess:
        raw = base_config(tmp_path, stages={"drain_timeout": 10.0, "monitor_check_interval": 0.2})
        path = write_config(tmp_path / "minisentry.toml", raw)
        path.write_text(path.read_text() + alerts)
        server = ServerProcess(path)
        started.append(server)
        return server

    yield start_server
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate(timeout=10)


def fail_checkout() -> None:
    try:
        {"cart": 1}["total"]
    except KeyError:
        sentry_sdk.capture_exception()


def test_a_new_issue_reaches_webhook_slack_and_email_then_a_regression(tmp_path, start):
    with WebhookReceiver() as hooks, SmtpReceiver() as smtp:
        server = start(alerts_toml([f'{{ type = "webhook", url = "{hooks.url}/hook" }}',
                                    f'{{ type = "slack", url = "{hooks.url}/slack" }}',
                                    '{ type = "email", to = ["ops@example.com", "dev@example.com"] }'],
                                   smtp_port=smtp.port))
        init_sdk(server.dsn())
        try:
            fail_checkout()
            sentry_sdk.flush(timeout=10)
            (created,) = wait_for(timeout=20, predicate=lambda: hooks.accepted("/hook"))
            issue = created["data"]["issue"]
            assert created["action"] == "created" and issue["title"] == "KeyError: 'total'"
            assert issue["project"]["slug"] == "demo" and issue["url"].endswith(f"/ui/issues/{issue['id']}/")
            (slack,) = wait_for(timeout=20, predicate=lambda: hooks.accepted("/slack"))
            assert slack["text"] == "New issue in demo: KeyError: 'total'"
            assert [block["type"] for block in slack["blocks"]] == ["section", "context"]
            assert "|KeyError: 'total'>" in slack["blocks"][0]["text"]["text"]
            (mail,) = wait_for(timeout=20, predicate=lambda: smtp.messages)
            assert mail["Subject"] == "[minisentry] New issue in demo: KeyError: 'total'"
            assert mail["To"] == "ops@example.com, dev@example.com" and mail["From"] == "minisentry@example.com"
            assert issue["url"] in mail.get_payload()

            with SqliteStore(tmp_path / "store.sqlite") as store:  # resolve it, as the UI's button does
                store.set_issue_status(int(issue["id"]), "resolved")
            fail_checkout()
            sentry_sdk.flush(timeout=10)
            regression = wait_for(timeout=20, predicate=lambda: hooks.accepted("/hook")[1:])[0]
            assert regression["action"] == "regression" and regression["data"]["issue"]["id"] == issue["id"]
            wait_for(timeout=20, predicate=lambda: len(smtp.messages) == 2)
            assert smtp.messages[1]["Subject"] == "[minisentry] Regression in demo: KeyError: 'total'"
        finally:
            close_sdk()


def test_an_error_check_in_alerts(start):
    with WebhookReceiver() as hooks:
        server = start(alerts_toml([f'{{ type = "webhook", url = "{hooks.url}" }}'], on='"new_issue"'))
        init_sdk(server.dsn())
        try:
            config = {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "checkin_margin": 2, "max_runtime": 10}
            check_in_id = capture_checkin(monitor_slug="nightly-report", status="in_progress", monitor_config=config)
            capture_checkin(monitor_slug="nightly-report", check_in_id=check_in_id, status="error", duration=3.2)
            sentry_sdk.flush(timeout=10)
            (alert,) = wait_for(hooks.accepted, timeout=20)
            assert alert["action"] == "monitor_failed" and alert["data"]["monitor"]["status"] == "error"
            assert alert["data"]["monitor"]["slug"] == "nightly-report"
            assert alert["data"]["monitor"]["schedule"]["value"] == "*/5 * * * *"
        finally:
            close_sdk()


def test_a_restart_neither_resends_nor_loses_alerts(start):
    with WebhookReceiver(statuses=[500]) as hooks:
        alerts = alerts_toml([f'{{ type = "webhook", url = "{hooks.url}" }}'])
        server = start(alerts)
        init_sdk(server.dsn())
        try:
            fail_checkout()
            sentry_sdk.flush(timeout=10)
            wait_for(hooks.accepted, timeout=20)  # the 500 was retried
            code, out, err = server.stop(signal.SIGTERM)
            assert code == 0, err[-2000:]
            assert "given up" not in err
            server = start(alerts)
            init_sdk(server.dsn())
            sentry_sdk.capture_message("after the restart", level="error")
            sentry_sdk.flush(timeout=10)
            wait_for(timeout=20, predicate=lambda: len(hooks.accepted()) == 2)
            assert [a["data"]["issue"]["title"] for a in hooks.accepted()] == ["KeyError: 'total'",
                                                                                "after the restart"]
            wait_for(timeout=20, predicate=lambda: "minisentry_alerts_sent_total 1" in httpx.get(f"{server.url}/metrics").text)
        finally:
            close_sdk()


def test_a_broken_alerts_section_stops_serve_with_the_key_named(tmp_path):
    path = write_config(tmp_path / "minisentry.toml", base_config(tmp_path))
    path.write_text(path.read_text() + alerts_toml(['{ type = "webhook", url = "hooks.example.com/x" }']))
    done = subprocess.run([sys.executable, "-m", "minisentry", "--config", str(path), "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "alerts.rules[0].targets[0].url: only http and https URLs are sent to" in done.stderr
    assert "Traceback" not in done.stderr
