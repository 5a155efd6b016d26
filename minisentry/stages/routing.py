"""Fast lane / slow lane plumbing around the symbolicate stage.

:class:`LaneRouter` is the ingest stage's outbox: each event goes to the fast or the slow
symbolicate channel by its project's lane (``lanes.LaneSelector``). :class:`DemotingReceiver` is the
fast lane workers' inbox: when an event is *taken*, its project's lane is checked again, and an
event whose project was demoted meanwhile moves to the slow channel (at most
``lanes.max_lane_switches`` times) instead of occupying a fast worker.

Events move only fast → slow after routing. A slow worker that finds its project fast again just
works on the event: letting events move back would make each lane's workers hold senders of the
other lane, and clone-and-close shutdown could then never end either channel.
"""

from __future__ import annotations

from typing import Any

import anyio

from ..channels import ChannelReceiver, ChannelSender, Delivery, ReceiverBase, SenderBase
from ..lanes import SLOW, LaneSelector

__all__ = ["LaneRouter", "DemotingReceiver"]


class LaneRouter(SenderBase):
    """A ChannelSender that sends each event to the fast or the slow channel by its project's lane."""

    def __init__(self, fast: ChannelSender, slow: ChannelSender, selector: LaneSelector) -> None:
        self.fast = fast
        self.slow = slow
        self.selector = selector

    def _target(self, message: Any) -> ChannelSender:
        return self.slow if self.selector.lane_of(message.project_id) == SLOW else self.fast

    async def send(self, message: Any) -> None:
        """Send to the project's lane, waiting while that lane's channel is full."""
        await self._target(message).send(message)

    def send_nowait(self, message: Any) -> None:
        """Send without waiting. Raises anyio.WouldBlock when that lane's channel is full."""
        self._target(message).send_nowait(message)

    async def confirm(self) -> None:
        """Wait until both lanes hold what was sent durably (see ChannelSender.confirm)."""
        await self.fast.confirm()
        await self.slow.confirm()

    async def aclose(self) -> None:
        """Close both lanes' senders."""
        await self.fast.aclose()
        await self.slow.aclose()


class DemotingReceiver(ReceiverBase):
    """Wraps the fast lane's receiver: events of projects demoted since routing move to the slow lane.

    A move that would block (the slow channel is full) does not happen: the event stays in the fast
    lane rather than stall a fast worker behind the slow lane.
    """

    def __init__(self, inner: ChannelReceiver, slow: ChannelSender, selector: LaneSelector) -> None:
        self.inner = inner
        self.slow = slow
        self.selector = selector
        self.moved = 0

    def _keep(self, delivery: Delivery) -> bool:
        message = delivery.message
        if not hasattr(message, "lane_switches"):
            return True  # a plugin record: nothing to symbolicate, no lane to change
        lane = self.selector.should_switch(message.project_id, "fast", message.lane_switches)
        if lane != SLOW:
            return True
        message.lane_switches += 1
        try:
            self.slow.send_nowait(message)
        except anyio.WouldBlock:
            message.lane_switches -= 1
            return True
        delivery.ack()
        self.moved += 1
        return False

    async def receive(self) -> Delivery:
        """The next delivery that stays in the fast lane. Raises anyio.EndOfStream at the end."""
        while True:
            delivery = await self.inner.receive()
            if self._keep(delivery):
                return delivery

    def receive_nowait(self) -> Delivery:
        """Like ``receive`` without waiting. Raises anyio.WouldBlock or anyio.EndOfStream."""
        while True:
            delivery = self.inner.receive_nowait()
            if self._keep(delivery):
                return delivery

    async def aclose(self) -> None:
        """Close the wrapped receiver and this worker's slow-lane sender."""
        await self.inner.aclose()
        await self.slow.aclose()

