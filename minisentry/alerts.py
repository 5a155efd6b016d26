"""The alert worker: follows the issue activity and monitor-failure logs and delivers alerts.

::

    issue_activity ──┐                       ┌─▶ deliver (retry, back-off) ─┐
                     ├─ read ─▶ rules ─[queue]┼─▶ deliver                    ├─▶ cursor (in order)
    monitor_failures ┘  (max_queue rows)      └─▶ ... (concurrency)         ┘

Runs in the process with the ``store`` role, as a background task of the Pipeline; it only reads
the store and writes its cursors, so ingestion never waits for it. Every ``poll_interval`` seconds
it reads the rows after its read position (at most ``max_queue`` rows unfinished at once), turns
each into an :class:`~minisentry.alert_model.Alert`, routes it through the rules (rate limits) and
queues one delivery per target. ``concurrency`` tasks deliver; a retryable failure is tried again
``max_retries`` times with doubling back-off, then given up with an error log and the ``failed``
counter. A cursor only moves past a row once every delivery of it is finished (out-of-order
completions wait for the head, as arroyo commits offsets), so alerts are at-least-once across
restarts: a stop mid-delivery re-sends those alerts at the next start, never skips them.

On the very first start (no cursor yet) the cursors are set to the logs' ends, so installing alerts
does not alert on history. Rows older than ``max_age`` when reached are skipped (counted ``stale``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import anyio

from .alert_model import Alert, alert_from_activity, alert_from_monitor_failure
from .alert_rules import RuleSet
from .config_alerts import AlertsConfig
from .errors import AlertDeliveryError, AlertRefused, MinisentryError

__all__ = ["AlertWorker", "ACTIVITY_CURSOR", "MONITOR_CURSOR"]

log = logging.getLogger("minisentry.alerts")

#: Seconds each alert channel may take to close at shutdown.
_CLOSE_TIMEOUT = 5.0

ACTIVITY_CURSOR = "alerts"
MONITOR_CURSOR = "alerts-monitors"


@dataclass(frozen=True, slots=True)
class _Delivery:
    cursor: str
    row_id: int
    alert: Alert
    target: dict[str, Any]


class _Tracker:
    """Rows read from one log and the deliveries each still waits for; releases finished rows in order."""

    def __init__(self, committed: int) -> None:
        self.read = committed
        self.committed = committed
        self.saved = committed
        self.pending: OrderedDict[int, int] = OrderedDict()

    def add(self, row_id: int, deliveries: int) -> None:
        self.pending[row_id] = deliveries
        self.read = row_id
        self.release()

    def finish(self, row_id: int) -> None:
        self.pending[row_id] -= 1
        self.release()

    def release(self) -> None:
        while self.pending and next(iter(self.pending.values())) == 0:
            self.committed, _ = self.pending.popitem(last=False)


class AlertWorker:
    """Delivers alerts from ``store`` through ``channels`` (bound, by type) under ``config``.

    ``link_base()`` returns the base URL of issue links (``server.public_url``). Counters for
    ``/metrics`` are in :meth:`statistics`. :meth:`run` never returns until cancelled and raises
    nothing: store errors and channel bugs are logged and the work goes on.
    """

    def __init__(self, store: Any, config: AlertsConfig, channels: dict[str, Any], link_base: Callable[[], str],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.channels = channels
        self.rules = RuleSet(config.rules)
        self._link_base = link_base
        self._clock = clock
        self._sources = (
            (ACTIVITY_CURSOR, store.activity_after, store.last_activity_id,
             lambda row: alert_from_activity(row, self._link_base())),
            (MONITOR_CURSOR, store.monitor_failures_after, store.last_monitor_failure_id, alert_from_monitor_failure),
        )
        self._trackers: dict[str, _Tracker] = {}
        self.sent = self.failed = self.refused = self.retried = self.stale = 0

    def statistics(self) -> dict[str, int]:
        """Counters since start: sent, failed (given up), refused (SSRF policy), retried, suppressed, stale, and queued rows."""
        return {"sent": self.sent, "failed": self.failed, "refused": self.refused, "retried": self.retried,
                "suppressed": self.rules.suppressed, "stale": self.stale, "queued": self.queued()}

    def queued(self) -> int:
        """Rows read but not finished (bounded by ``max_queue``)."""
        return sum(len(tracker.pending) for tracker in self._trackers.values())

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Load or create the cursors, then poll and deliver until cancelled. Never raises but Cancelled."""
        while not self._trackers:
            try:
                await anyio.to_thread.run_sync(self._load_cursors)
            except MinisentryError as exc:
                log.error("alerts: cannot read the cursors, trying again: %s", exc)
                await anyio.sleep(self.config.poll_interval)
        task_status.started()
        send, receive = anyio.create_memory_object_stream[_Delivery](self.config.max_queue)
        try:
            async with anyio.create_task_group() as group, send, receive:
                for _ in range(self.config.concurrency):
                    group.start_soon(self._deliver_loop, receive)
                while True:
                    try:
                        await self.poll(send)
                    except Exception:
                        # A bug or a store failure: log it and poll again; alerts are not worth a crash.
                        log.exception("alerts: polling failed")
                    await anyio.sleep(self.config.poll_interval)
        finally:
            with anyio.CancelScope(shield=True):
                await self._commit()
            for channel in self.channels.values():
                if hasattr(channel, "aclose"):
                    # Shielded so a cancelled shutdown still closes connections, but bounded: a
                    # plugin channel whose aclose hangs must not hold shutdown past its drain time.
                    with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                        await channel.aclose()

    def _load_cursors(self) -> None:
        trackers = {}
        for name, _, last_id, _ in self._sources:
            cursor = self.store.activity_cursor(name)
            if cursor is None:
                cursor = last_id()
                self.store.set_activity_cursor(name, cursor)
            trackers[name] = _Tracker(cursor)
        self._trackers = trackers

    async def poll(self, send: Any) -> int:
        """Read new rows of both logs (within ``max_queue``) and queue their deliveries; return the rows read.

        Waits when the delivery queue is full. Raises StorageError when the store cannot be read.
        """
        count = 0
        for name, read, _, build in self._sources:
            tracker = self._trackers[name]
            room = self.config.max_queue - self.queued()
            if room <= 0:
                break
            rows = await anyio.to_thread.run_sync(read, tracker.read, room)
            for row in rows:
                try:
                    deliveries = self._route(build(row))
                except Exception:
                    # One row we cannot turn into an alert (a bug, odd data) must not stop every
                    # alert after it: log it, count it as failed, and move past it.
                    log.exception("alerts: cannot build an alert from %s row %s; skipped", name, row.get("id"))
                    self.failed += 1
                    deliveries = []
                tracker.add(row["id"], len(deliveries))
                for alert, target in deliveries:
                    await send.send(_Delivery(name, row["id"], alert, target))
            count += len(rows)
        await self._commit()
        return count

    def _route(self, alert: Alert) -> list[tuple[Alert, dict[str, Any]]]:
        if alert.created < self._clock() - self.config.max_age:
            self.stale += 1
            log.warning("alerts: skipped %s (%s in %s): older than alerts.max_age", alert.id, alert.kind, alert.project)
            return []
        return self.rules.route(alert)

    async def _deliver_loop(self, receive: Any) -> None:
        async for delivery in receive:
            await self.deliver(delivery.alert, delivery.target)
            self._trackers[delivery.cursor].finish(delivery.row_id)
            await self._commit()

    async def deliver(self, alert: Alert, target: dict[str, Any]) -> bool:
        """Deliver one alert to one target, retrying retryable failures; return whether it arrived. Never raises."""
        channel = self.channels[target["type"]]
        delay = self.config.retry_initial
        for attempt in range(self.config.max_retries + 1):
            try:
                # A plugin channel gets the same bound as ours (an SMTP exchange takes a few round trips).
                with anyio.fail_after(self.config.timeout * 3):
                    await channel.deliver(alert, target)
            except AlertRefused as exc:
                self.refused += 1
                log.error("alert %s (rule %r) refused for %s target: %s", alert.id, alert.rule, target["type"], exc)
                return False
            except (AlertDeliveryError, TimeoutError) as exc:
                retryable = getattr(exc, "retryable", True)
                if not retryable or attempt == self.config.max_retries:
                    self.failed += 1
                    log.error("alert %s (rule %r) to %s target given up after %d attempt(s): %s", alert.id,
                              alert.rule, target["type"], attempt + 1, str(exc) or "timed out")
                    return False
                self.retried += 1
                log.warning("alert %s to %s target failed (attempt %d), retrying: %s", alert.id, target["type"],
                            attempt + 1, str(exc) or "timed out")
            except Exception:
                self.failed += 1
                log.exception("alert channel %r raised delivering %s (a bug in the channel)", target["type"], alert.id)
                return False
            else:
                self.sent += 1
                log.info("alert %s (%s in %s, rule %r) sent to %s target", alert.id, alert.kind, alert.project,
                         alert.rule, target["type"])
                return True
            await anyio.sleep(min(delay, self.config.retry_max) * random.uniform(0.5, 1.0))
            delay *= 2
        return False  # pragma: no cover - the loop always returns

    async def _commit(self) -> None:
        """Write the cursors that moved (in a worker thread); a failed write is tried again next time."""
        for name, tracker in self._trackers.items():
            if tracker.committed > tracker.saved:
                position = tracker.committed
                try:
                    await anyio.to_thread.run_sync(self.store.set_activity_cursor, name, position)
                except MinisentryError as exc:
                    log.error("alerts: cannot save cursor %s: %s", name, exc)
                    continue
                tracker.saved = max(tracker.saved, position)
