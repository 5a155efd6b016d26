"""The alert worker in an embedded Pipeline with a real store and a real local webhook receiver."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import anyio
import pytest

from minisentry import Pipeline
from minisentry.monitors import CheckIn

from ..test_pipeline import error_envelope
from .receivers import WebhookReceiver

pytestmark = pytest.mark.anyio


def alerts(url: str, *, rule: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """An ``[alerts]`` section with one rule sending everything to ``url`` (a local receiver)."""
    return {"allow_private_addresses": True, "poll_interval": 0.05, "retry_initial": 0.01, **settings,
            "rules": [{"name": "all", "on": ["new_issue", "regression", "monitor_failed"],
                       "targets": [{"type": "webhook", "url": url}], **(rule or {})}]}


async def until(predicate, timeout: float = 15.0) -> Any:
    with anyio.fail_after(timeout):
        while not (value := predicate()):
            await anyio.sleep(0.02)
    return value


async def send_error(pipeline: Pipeline, exc_type: str = "ValueError", project_id: int = 1) -> str:
    event_id = uuid.uuid4().hex
    await pipeline.submit(error_envelope(event_id, exc_type=exc_type), project_id)
    await pipeline.flush()
    return event_id


async def test_new_issue_then_regression_reach_the_webhook(make_config):
    with WebhookReceiver() as receiver:
        config = make_config(alerts=alerts(receiver.url + "/hook"), server={"public_url": "https://sentry.example"})
        async with Pipeline(config, http=False) as pipeline:
            event_id = await send_error(pipeline)
            (new,) = await until(receiver.accepted)
            issue = new["data"]["issue"]
            assert new["action"] == "created" and new["kind"] == "new_issue" and new["rule"] == "all"
            assert issue["title"].startswith("ValueError") and issue["level"] == "error"
            assert issue["status"] == "unresolved" and issue["count"] == "1" and issue["event_id"] == event_id
            assert issue["project"]["slug"] == "demo" and issue["shortId"] == f"DEMO-{issue['id']}"
            assert issue["url"] == f"https://sentry.example/ui/issues/{issue['id']}/"
            assert issue["firstSeen"].endswith("Z")
            await anyio.to_thread.run_sync(pipeline.store.set_issue_status, int(issue["id"]), "resolved")
            await send_error(pipeline)
            regression = (await until(lambda: receiver.accepted()[1:]))[0]
            assert regression["action"] == "regression" and regression["kind"] == "regression"
            assert regression["data"]["issue"]["id"] == issue["id"] and regression["data"]["issue"]["count"] == "2"
            assert receiver.received[0]["headers"]["X-Minisentry-Alert-Id"] == new["id"]
            # The receiver records a request before answering it: wait for the worker to see the answer.
            await until(lambda: pipeline.alerts.statistics()["sent"] == 2)
            assert "minisentry_alerts_sent_total 2" in pipeline.metrics_text()


async def test_failed_cron_check_ins_alert(make_config):
    with WebhookReceiver() as receiver:
        config = make_config(alerts=alerts(receiver.url))
        async with Pipeline(config, http=False) as pipeline:
            ok, failed = (CheckIn(1, uuid.uuid4().hex, "nightly", status, time.time()) for status in ("ok", "error"))
            await anyio.to_thread.run_sync(pipeline.store.record_check_ins, [ok, failed])
            (alert,) = await until(receiver.accepted)
            assert alert["action"] == "monitor_failed" and alert["data"]["monitor"]["slug"] == "nightly"
            assert alert["data"]["monitor"]["status"] == "error" and alert["project"] == "demo"
            assert alert["data"]["monitor"]["checkInId"] == failed.check_in_id


async def test_rules_filter_by_kind_project_and_level(make_config):
    with WebhookReceiver() as receiver:
        rule = {"on": ["new_issue"], "projects": ["other"], "min_level": "error"}
        async with Pipeline(make_config(alerts=alerts(receiver.url, rule=rule)), http=False) as pipeline:
            await send_error(pipeline, "DemoError", project_id=1)  # another project
            await anyio.to_thread.run_sync(pipeline.store.record_check_ins,
                                           [CheckIn(2, uuid.uuid4().hex, "job", "error", time.time())])
            await send_error(pipeline, "OtherError", project_id=2)
            (alert,) = await until(receiver.accepted)
            assert alert["data"]["issue"]["title"].startswith("OtherError")
            await until(lambda: pipeline.alerts.queued() == 0)
            assert len(receiver.received) == 1


async def test_a_receiver_answering_500_is_retried_then_given_up(make_config):
    with WebhookReceiver(statuses=[500, 503, 500]) as receiver:
        async with Pipeline(make_config(alerts=alerts(receiver.url, max_retries=2)), http=False) as pipeline:
            await send_error(pipeline, "FirstError")
            await until(lambda: pipeline.alerts.statistics()["failed"] == 1)
            assert [r["status"] for r in receiver.received] == [500, 503, 500]
            assert pipeline.alerts.statistics()["retried"] == 2
            # The server goes on: the next alert is delivered, and the cursor moved past the failed one.
            await send_error(pipeline, "SecondError")
            (alert,) = await until(receiver.accepted)
            assert alert["data"]["issue"]["title"].startswith("SecondError")
            assert "minisentry_alerts_failed_total 1" in pipeline.metrics_text()


async def test_a_4xx_answer_is_not_retried(make_config):
    with WebhookReceiver(statuses=[404]) as receiver:
        async with Pipeline(make_config(alerts=alerts(receiver.url)), http=False) as pipeline:
            await send_error(pipeline)
            await until(lambda: pipeline.alerts.statistics()["failed"] == 1)
            assert len(receiver.received) == 1 and pipeline.alerts.statistics()["retried"] == 0


async def test_the_rate_limit_suppresses_the_alert_past_it(make_config):
    with WebhookReceiver() as receiver:
        async with Pipeline(make_config(alerts=alerts(receiver.url, rule={"max_per_hour": 2})), http=False) as pipeline:
            for name in ("AError", "BError", "CError"):
                await send_error(pipeline, name)
            await until(lambda: pipeline.alerts.statistics()["suppressed"] == 1)
            await until(lambda: len(receiver.accepted()) == 2)
            # Deliveries run concurrently: they may arrive in either order. C, the third, was suppressed.
            assert sorted(a["data"]["issue"]["title"][0] for a in receiver.accepted()) == ["A", "B"]
            assert "minisentry_alerts_suppressed_total 1" in pipeline.metrics_text()


async def test_a_private_address_is_refused_unless_allowed(make_config):
    with WebhookReceiver() as receiver:
        section = alerts(receiver.url.replace("127.0.0.1", "localhost"), allow_private_addresses=False)
        async with Pipeline(make_config(alerts=section), http=False) as pipeline:
            await send_error(pipeline)
            await until(lambda: pipeline.alerts.statistics()["refused"] == 1)
            stats = pipeline.alerts.statistics()
            assert stats["retried"] == 0 and stats["sent"] == 0 and receiver.received == []
    # Allowed, the same loopback receiver gets its alerts: every other test here runs that way
    # (alerts() sets allow_private_addresses = true for the receiver on 127.0.0.1).


async def test_restarts_neither_resend_nor_lose_alerts(make_config):
    with WebhookReceiver() as receiver:
        on, off = alerts(receiver.url), alerts(receiver.url, enabled=False)
        async with Pipeline(make_config(alerts=off), http=False) as pipeline:
            await send_error(pipeline, "HistoryError")  # before alerts were ever on
        async with Pipeline(make_config(alerts=on), http=False) as pipeline:
            await send_error(pipeline, "AError")
            await until(receiver.accepted)
            # Received is not yet finished: stopping before the answer is back re-sends A later
            # (at least once). Wait for the delivery to finish so the cursor moves past it.
            await until(lambda: pipeline.alerts.queued() == 0)
        async with Pipeline(make_config(alerts=off), http=False) as pipeline:
            await send_error(pipeline, "BError")  # written while no worker runs
        async with Pipeline(make_config(alerts=on), http=False) as pipeline:
            await until(lambda: len(receiver.accepted()) == 2)
            await until(lambda: pipeline.alerts.queued() == 0)
        assert [a["data"]["issue"]["title"][0] for a in receiver.accepted()] == ["A", "B"]


async def test_the_queue_bound_makes_the_reader_wait(make_config):
    """At ``max_queue`` unfinished rows the worker reads no further; the rest stay in the log, none is lost."""
    with WebhookReceiver() as receiver:
        receiver.gate = threading.Event()
        section = alerts(receiver.url, max_queue=2, concurrency=1)
        async with Pipeline(make_config(alerts=section), http=False) as pipeline:
            for n in range(5):
                await send_error(pipeline, f"E{n}Error")
            await until(lambda: receiver.in_flight == 1 and pipeline.alerts.queued() == 2)
            await anyio.sleep(0.3)  # several polls: still nothing more read
            assert pipeline.alerts.queued() == 2 and receiver.max_in_flight == 1
            receiver.gate.set()
            await until(lambda: len(receiver.accepted()) == 5)
        assert [a["data"]["issue"]["title"][:2] for a in receiver.accepted()] == [f"E{n}" for n in range(5)]


async def test_an_unignored_issue_alerts_only_rules_that_ask_for_it(make_config):
    from minisentry.issue_status import parse_change

    with WebhookReceiver() as receiver, WebhookReceiver() as other:
        config = make_config(alerts={
            "allow_private_addresses": True, "poll_interval": 0.05,
            "rules": [{"name": "unignored", "on": ["unignored"], "targets": [{"type": "webhook", "url": receiver.url}]},
                      {"name": "new only", "on": ["new_issue"], "targets": [{"type": "webhook", "url": other.url}]}]})
        async with Pipeline(config, http=False) as pipeline:
            await send_error(pipeline)
            (new,) = await until(other.accepted)
            issue_id = int(new["data"]["issue"]["id"])
            change = parse_change({"status": "ignored", "statusDetails": {"ignoreCount": 1}}, now=time.time())
            await anyio.to_thread.run_sync(pipeline.store.change_issue_status, [issue_id], change)
            await send_error(pipeline)  # the one event the issue stays ignored for
            await send_error(pipeline)  # the next one unignores it
            (unignored,) = await until(receiver.accepted)
            assert unignored["action"] == "unignored" and unignored["data"]["issue"]["status"] == "unresolved"
            assert unignored["data"]["issue"]["id"] == str(issue_id)
            await anyio.sleep(0.3)  # a few polls: the "new only" rule got nothing more
            assert len(other.accepted()) == 1 and len(receiver.accepted()) == 1


async def test_a_row_that_cannot_become_an_alert_is_skipped_not_blocking(make_config, monkeypatch):
    import minisentry.alerts as alerts_module

    real = alerts_module.alert_from_activity

    def fragile(row, base_url):
        if row["title"].startswith("BadError"):
            raise ValueError("cannot render this row")
        return real(row, base_url)

    monkeypatch.setattr(alerts_module, "alert_from_activity", fragile)
    with WebhookReceiver() as receiver:
        async with Pipeline(make_config(alerts=alerts(receiver.url)), http=False) as pipeline:
            await send_error(pipeline, "BadError")
            await send_error(pipeline, "GoodError")
            (good,) = await until(receiver.accepted)
            assert good["data"]["issue"]["title"].startswith("GoodError")
            await until(lambda: pipeline.alerts.queued() == 0)
            assert pipeline.alerts.statistics()["failed"] == 1
