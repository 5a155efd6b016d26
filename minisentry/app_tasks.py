"""The Pipeline's background tasks: watchers that follow the store, periodic jobs, the spool.

A mixin of :class:`~minisentry.app.Pipeline`, which starts these in its task group (``app.py``
keeps the wiring; this module keeps what each task does). Every watcher and periodic job runs in
its own cancel scope from :meth:`PipelineTasks.watcher_scope`; all of them end together when
shutdown begins.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from .errors import MinisentryError
from .fanout import TOPIC_KILLSWITCHES, TOPIC_PROJECTS
from .lane_overrides import follow_lane_overrides
from .outcomes import Outcome, category_of_item
from .projects import ProjectKeys
from .retention import prune_round
from .spool import drain, encode_envelope_message
from .stages.store import write_side_records

__all__ = ["KILLSWITCH_POLL", "PipelineTasks"]

log = logging.getLogger("minisentry")

#: Seconds between reads of the stored kill-switch values: a push takes effect within this.
KILLSWITCH_POLL = 0.25


class PipelineTasks:
    """The Pipeline's background tasks (needs its config, stores, channels and scopes)."""

    # Set by Pipeline.__init__ / __aenter__.
    config: Any
    store: Any
    _read_store: Any
    backends: Any
    killswitches: Any
    settings: Any
    lanes: Any
    outcomes: Any
    spool: Any
    context: Any
    _watch_scopes: list
    _spool_scope: anyio.CancelScope
    _producer_scope: anyio.CancelScope
    _salvage: Any
    _bound_channels: Any

    async def _watch_killswitches(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        with self.watcher_scope(), await self._subscribe(TOPIC_KILLSWITCHES) as wake:
            await self.killswitches.watch(self._read_store.killswitch_values,
                                          interval=self.config.backends.poll_interval, wake=wake,
                                          task_status=task_status)

    async def _subscribe(self, topic: str) -> Any:
        # A fan-out publish wakes the watcher at once; the first Redis subscription connects (blocks).
        return await anyio.to_thread.run_sync(self.backends.fanout.subscribe, topic)

    def watcher_scope(self) -> anyio.CancelScope:
        """A cancel scope for a background watcher: all of them end when shutdown begins."""
        scope = anyio.CancelScope()
        self._watch_scopes.append(scope)
        return scope

    async def _watch_keys(self, keys: ProjectKeys, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        with self.watcher_scope(), await self._subscribe(TOPIC_PROJECTS) as wake:
            await keys.watch(self._read_store.config_version, interval=self.config.backends.poll_interval, wake=wake,
                             task_status=task_status)

    async def _watch_settings(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Follow per-project settings (``minisentry projects settings``): same version counter as the keys."""
        with self.watcher_scope(), await self._subscribe(TOPIC_PROJECTS) as wake:
            await self.settings.watch(self._read_store.config_version, interval=self.config.backends.poll_interval,
                                      wake=wake, task_status=task_status)

    async def _watch_lane_overrides(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Apply operators' lane pins from the store (``minisentry lanes force``) as they change."""
        pinned_by_config = {**{p: "slow" for p in self.config.lanes.force_slow},
                            **{p: "fast" for p in self.config.lanes.force_fast}}
        with self.watcher_scope():
            await follow_lane_overrides(self.lanes, self._read_store.lane_overrides, pinned_by_config,
                                        interval=KILLSWITCH_POLL, task_status=task_status)

    async def _monitor_clock(self) -> None:
        """Every ``stages.monitor_check_interval`` seconds, mark overdue cron check-ins missed / timed out."""
        with self.watcher_scope():
            while True:
                await anyio.sleep(self.config.stages.monitor_check_interval)
                try:
                    changed = await anyio.to_thread.run_sync(self.store.detect_missed, time.time())
                except MinisentryError as exc:
                    log.error("cannot check cron monitors: %s", exc)
                    continue
                if changed:
                    log.info("cron monitors: %d check-ins missed or timed out", changed)

    async def _retention(self) -> None:
        """Every ``retention.interval`` seconds, delete what ``[retention]`` no longer keeps (bounded)."""
        with self.watcher_scope():
            while True:
                await anyio.sleep(self.config.retention.interval)
                await prune_round(self.store, self.config.retention)

    async def _drain_spool(self, sender: Any) -> None:
        def expired(message: Any) -> None:
            for item in message.envelope.items:
                self.outcomes.record(message.project_id, Outcome.INVALID, category_of_item(item.type), "spool_expired")

        async with sender:
            with self._spool_scope:
                await drain(self.spool, sender, on_expired=expired)

    async def _spool_leftovers(self) -> None:
        """On a shutdown that cannot drain in time, move what waits in the ingest channel to the spool."""
        moved = 0
        while True:
            try:
                delivery = self._salvage.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            await anyio.to_thread.run_sync(self.spool.put, encode_envelope_message(delivery.message))
            delivery.ack()
            moved += 1
        if moved:
            log.info("kept %d envelopes in the spool for the next start", moved)

    async def _run_producer(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        # Serves the relay's confirmations; stops once the relay stopped (stages flush on their own).
        with self._producer_scope:
            await self._bound_channels.run(task_status=task_status)

    async def _run_channel(self, channel: Any, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await channel.run(task_status=task_status)
        except MinisentryError as exc:
            log.error("channel %s failed: %s", channel.name, exc)
            raise

    async def _write_side_records(self) -> None:
        """Without the store role, this process writes its own outcomes and side records (each second)."""
        assert self.context is not None
        with self.watcher_scope():
            while True:
                await anyio.sleep(1.0)
                await write_side_records(self.context)

