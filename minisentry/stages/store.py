"""The store stage: the single writer that saves processed events in batches.

It takes whatever is buffered (up to ``storage.batch_size``) and writes it in one transaction in a
worker thread, so under load batches grow by themselves while at low load an event is written
immediately. Deliveries are acknowledged only after their transaction committed. A failed write is
retried with back-off and nothing is acknowledged meanwhile, so the channel fills and backpressure
reaches the relay instead of events being lost. Kill-switches: ``drop_before_save`` drops matching
events here (outcome filtered/killswitch), ``skip_issue_creation`` stores them without an issue.
Plugin records (``PluginRecord``) are written first, by their item type's ``store``, per type.
"""

from __future__ import annotations

from typing import Any

import anyio

from ..channels import ChannelReceiver, Delivery
from ..context import StageContext
from ..errors import StorageError
from ..logs import scrub_logs
from ..messages import EventMessage, PluginRecord, ProcessedEvent
from ..outcomes import Outcome, category_of_item
from .switches import hits

__all__ = ["StoreStage", "write_side_records", "write_side_records_blocking"]


async def _until_written(ctx: StageContext, what: str, write: Any, *args: Any) -> Any:
    """Run a blocking store write in a worker thread, retrying with back-off until it succeeds.

    Nothing is acknowledged meanwhile, so the channel fills and backpressure reaches the relay.
    """
    backoff = 0.1
    while True:
        try:
            return await anyio.to_thread.run_sync(write, *args)
        except StorageError as exc:
            ctx.log.error("store write of %s failed, retrying in %.1fs: %s", what, backoff, exc)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


def _side_writers(ctx: StageContext) -> list[tuple[Any, Any]]:
    def write_logs(records: list) -> None:
        # Logs carry user data like events do: scrubbed (in this worker thread) before they are stored,
        # each with its project's effective scrubbing settings.
        if ctx.settings is None:
            ctx.store.write_logs(scrub_logs(records, ctx.config.scrubbing))
            return
        by_project: dict[int, list] = {}
        for record in records:
            by_project.setdefault(record.project_id, []).append(record)
        ctx.store.write_logs([scrubbed for project_id, group in by_project.items()
                              for scrubbed in scrub_logs(group, ctx.settings.scrubbing_of(project_id))])

    return [(ctx.sessions, ctx.store.write_sessions), (ctx.check_ins, ctx.store.record_check_ins),
            (ctx.logs, write_logs)]


async def _write_queues(ctx: StageContext) -> None:
    """Write the waiting release-health counts, cron check-ins and logs, retrying until it succeeds."""
    for queue, write in _side_writers(ctx):
        if queue is not None and len(queue):
            rows = queue.take()
            await _until_written(ctx, f"{len(rows)} rows", write, rows)


async def write_side_records(ctx: StageContext) -> None:
    """Write pending outcomes, sessions, check-ins and logs; for processes without the store stage.

    Retries (with back-off, in a worker thread) until the store takes them.
    """
    outcomes = ctx.outcomes.take()
    if outcomes:
        await _until_written(ctx, f"{len(outcomes)} outcomes", ctx.store.write_batch, [], outcomes)
    await _write_queues(ctx)


def write_side_records_blocking(ctx: StageContext) -> None:
    """Write what :func:`write_side_records` would, once, in this thread (at shutdown). Logs failures."""
    try:
        outcomes = ctx.outcomes.take()
        if outcomes:
            ctx.store.write_batch([], outcomes)
        for queue, write in _side_writers(ctx):
            if queue is not None and len(queue):
                write(queue.take())
    except StorageError as exc:
        ctx.log.error("outcomes and side records lost at shutdown: %s", exc)


def _as_message(event: ProcessedEvent) -> EventMessage:
    # The kill-switch fields of a processed event, in the shape the checks take.
    return EventMessage(event.project_id, event.event_id, event.item_type, event.received, b"")

_OUTCOME_FLUSH_INTERVAL = 1.0
_MAX_BACKOFF = 5.0


async def _write_plugin_records(records: list[PluginRecord], ctx: StageContext) -> None:
    """Write plugin records, one transaction per item type, with the type's ``store``.

    A failing store (StorageError) is retried like events are; a plugin's ``store`` that raises
    anything else loses only its own records — counted ``invalid``/``plugin_failed`` and logged —
    so one broken plugin cannot stall the pipeline. Written ones are counted ``accepted``; records
    the store recognises as redelivered (same id) are counted once, the first time.
    """
    by_type: dict[str, list[PluginRecord]] = {}
    for record in records:
        by_type.setdefault(record.item_type, []).append(record)
    for item_type, group in by_type.items():
        kind = ctx.plugin_items.types.get(item_type) if ctx.plugin_items is not None else None
        outcome, reason = Outcome.ACCEPTED, ""
        if kind is None:
            # Sent by a process with a plugin this one lacks (scale-out with different installs).
            outcome, reason = Outcome.INVALID, "unknown_plugin_item_type"
        else:
            try:
                written = await _until_written(ctx, f"{len(group)} {item_type} records",
                                               ctx.store.write_plugin_records, kind, group)
                if written is not None:  # a plugin store that does not say keeps the old meaning: all
                    # A redelivered record was counted the first time; like a duplicate event, not again.
                    ctx.duplicates += len(group) - len(written)
                    group = written
            except Exception:
                ctx.log.exception("item type %s: store() failed; %d records lost", item_type, len(group))
                outcome, reason = Outcome.INVALID, "plugin_failed"
        for record in group:
            ctx.outcomes.record(record.project_id, outcome, category_of_item(item_type), reason,
                                timestamp=record.received)


class StoreStage:
    """Write processed events and outcome counts to the event store."""

    name = "store"

    async def run(self, inbox: ChannelReceiver, outbox: None, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends, then write the remaining outcomes."""
        batch_size = ctx.config.storage.batch_size
        async with inbox:
            ended = False
            while not ended:
                batch: list[Delivery] = []
                with anyio.move_on_after(_OUTCOME_FLUSH_INTERVAL):
                    try:
                        batch.append(await inbox.receive())
                    except anyio.EndOfStream:
                        ended = True
                while batch and len(batch) < batch_size:
                    try:
                        batch.append(inbox.receive_nowait())
                    except anyio.WouldBlock:
                        break
                    except anyio.EndOfStream:
                        ended = True
                        break
                await self.write(batch, ctx)

    def _apply_switches(self, batch: list[Delivery], ctx: StageContext) -> list[ProcessedEvent]:
        """Drop events matching ``drop_before_save``; ungroup those matching ``skip_issue_creation``."""
        events = []
        for delivery in batch:
            event = delivery.message
            message = _as_message(event)
            if hits(ctx.killswitches, "drop_before_save", message, event.data):
                ctx.outcomes.record(event.project_id, Outcome.FILTERED, category_of_item(event.item_type),
                                    "killswitch", timestamp=event.received)
                for attachment in event.attachments:
                    ctx.outcomes.record(event.project_id, Outcome.FILTERED, "attachment", "killswitch",
                                        len(attachment.data), timestamp=event.received)
                continue
            if event.group_hash is not None and hits(ctx.killswitches, "skip_issue_creation", message, event.data):
                event.group_hash = None
            events.append(event)
        return events

    async def write(self, batch: list[Delivery], ctx: StageContext) -> None:
        """Write a batch and the pending outcomes, retrying until it succeeds; then ack the batch."""
        records = [d.message for d in batch if isinstance(d.message, PluginRecord)]
        if records:
            await _write_plugin_records(records, ctx)  # acked with the rest of the batch, below
        events_batch = [d for d in batch if not isinstance(d.message, PluginRecord)] if records else batch
        events = self._apply_switches(events_batch, ctx) if ctx.killswitches is not None else \
            [d.message for d in events_batch]
        outcomes = ctx.outcomes.take()
        if not events and not outcomes:
            await _write_queues(ctx)
            for delivery in batch:
                delivery.ack()
            return
        new = await _until_written(ctx, f"{len(events)} events", ctx.store.write_batch, events, outcomes)
        await _write_queues(ctx)
        stored = sum(new)
        ctx.stored += stored
        ctx.duplicates += len(new) - stored
        for delivery in batch:
            delivery.ack()
