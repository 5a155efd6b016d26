"""The symbolication stage. For now a pass-through: events continue unchanged.

Symbolication (source maps, native debug files, ProGuard) will replace the body of ``handle``;
the loop, its pull-based consumption and the acknowledgement order stay as they are.
"""

from __future__ import annotations

from ..channels import ChannelReceiver, ChannelSender, receive_batch
from ..context import StageContext
from ..messages import EventMessage

__all__ = ["SymbolicateStage"]


class SymbolicateStage:
    """Pull events, symbolicate them (pass-through today), hand them to processing."""

    name = "symbolicate"

    async def handle(self, message: EventMessage, ctx: StageContext) -> EventMessage:
        """Return the event with its frames symbolicated. Never raises for a bad event."""
        return message

    async def run(self, inbox: ChannelReceiver, outbox: ChannelSender, ctx: StageContext) -> None:
        """Consume ``inbox`` until it ends; closes ``outbox`` on return."""
        async with inbox, outbox:
            while batch := await receive_batch(inbox, 64):
                for delivery in batch:
                    await outbox.send(await self.handle(delivery.message, ctx))
                    delivery.ack()
