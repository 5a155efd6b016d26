"""The symbolication stage: pull-based workers that run the registered symbolicators on each event.

Symbolicators come from plugins (``minisentry_register_symbolicators``): objects with a ``name`` and
``async def symbolicate(message) -> EventMessage``. Each worker *pulls* one event at a time from its
inbox when it is free, so a slow event occupies one worker, never a queue of others behind a busy
worker. Every event has a deadline (``stages.symbolicate_deadline`` seconds for all symbolicators
together): past it, or when a symbolicator raises, the event continues unsymbolicated with an entry
in its ``errors`` (``symbolication_timeout`` / ``symbolicator_failed``). It is never dropped.
Workers finish out of order; the channel commits acknowledgements in order.

Without symbolicators the stage is a pass-through that moves events in bursts.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import anyio

from ..channels import ChannelReceiver, ChannelSender, receive_batch
from ..context import StageContext
from ..messages import EventMessage

__all__ = ["SymbolicateStage"]

log = logging.getLogger("minisentry.symbolicate")

#: Events moved per wake-up when there is nothing to symbolicate.
PASS_THROUGH_BATCH = 64


class SymbolicateStage:
    """Pull events, run the symbolicators within a deadline, hand them to processing."""

    name = "symbolicate"

    def __init__(self, symbolicators: Sequence[Any] = ()) -> None:
        self.symbolicators = tuple(symbolicators)

    async def handle(self, message: EventMessage, ctx: StageContext) -> EventMessage:
        """Run every symbolicator on the event within the deadline. Never raises for a bad event."""
        if not self.symbolicators:
            return message
        deadline = anyio.current_time() + ctx.config.stages.symbolicate_deadline
        for symbolicator in self.symbolicators:
            name = getattr(symbolicator, "name", type(symbolicator).__name__)
            with anyio.CancelScope(deadline=deadline) as scope:
                try:
                    message = await symbolicator.symbolicate(message) or message
                except Exception as exc:
                    # A plugin's bug marks this event; it must not stop the stage or lose the event.
                    log.exception("symbolicator %s failed on event %s", name, message.event_id)
                    message.errors.append({"type": "symbolicator_failed", "symbolicator": name,
                                           "reason": str(exc)[:200]})
            if scope.cancelled_caught:
                log.warning("event %s of project %s passed its symbolication deadline in %s",
                            message.event_id, message.project_id, name)
                message.errors.append({"type": "symbolication_timeout", "symbolicator": name,
                                       "deadline_seconds": ctx.config.stages.symbolicate_deadline})
                break
        return message

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        batch_size = 1 if self.symbolicators else PASS_THROUGH_BATCH
        async with inbox, outbox:
            while batch := await receive_batch(inbox, batch_size):
                for delivery in batch:
                    await outbox.send(await self.handle(delivery.message, ctx))
                    delivery.ack()
