"""The store stage: the single writer that saves processed events in batches.

It takes whatever is buffered (up to ``storage.batch_size``) and writes it in one transaction in a
worker thread, so under load batches grow by themselves while at low load an event is written
immediately. Deliveries are acknowledged only after their transaction committed. A failed write is
retried with back-off and nothing is acknowledged meanwhile, so the channel fills and backpressure
reaches the relay instead of events being lost.
"""

from __future__ import annotations

import anyio

from ..channels import ChannelReceiver, Delivery
from ..context import StageContext
from ..errors import StorageError

__all__ = ["StoreStage"]

_OUTCOME_FLUSH_INTERVAL = 1.0
_MAX_BACKOFF = 5.0


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

    async def write(self, batch: list[Delivery], ctx: StageContext) -> None:
        """Write a batch and the pending outcomes, retrying until it succeeds; then ack the batch."""
        events = [delivery.message for delivery in batch]
        outcomes = ctx.outcomes.take()
        if not events and not outcomes:
            return
        backoff = 0.1
        while True:
            try:
                new = await anyio.to_thread.run_sync(ctx.store.write_batch, events, outcomes)
                break
            except StorageError as exc:
                ctx.log.error("store write of %d events failed, retrying in %.1fs: %s", len(events), backoff, exc)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        stored = sum(new)
        ctx.stored += stored
        ctx.duplicates += len(new) - stored
        for delivery in batch:
            delivery.ack()
