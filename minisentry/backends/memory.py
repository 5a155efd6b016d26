"""In-process channels on anyio memory object streams (the default backend).

Messages are passed as Python objects, never serialized. Acknowledgements are tracked with the same
in-order :class:`~minisentry.commits.CommitTracker` a Kafka channel uses, so ``in_flight`` and
``acked`` mean the same thing everywhere and a drain can wait for them. What this backend cannot do
is redeliver after the process dies: durability across a crash needs a persistent channel backend.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..channels import ChannelStats, Delivery, ReceiverBase, SenderBase
from ..commits import CommitTracker

__all__ = ["MemoryChannel", "MemorySender", "MemoryReceiver"]

# In-flight work is bounded by the workers' own batch sizes; this is only a guard against a leak.
_MAX_UNACKED = 1_000_000


class MemoryChannel:
    """A bounded in-memory channel. ``sender()``/``receiver()`` return fresh clones.

    Raises ValueError for a capacity below 1 (``channels.capacity`` is validated to be positive).
    """

    def __init__(self, name: str, capacity: int) -> None:
        if capacity < 1:
            # Senders wait for room a receiver makes by taking a buffered message: with no buffer
            # there is never room, and a sender that came first would wait for ever.
            raise ValueError(f"channel {name!r}: capacity must be at least 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._send, self._receive = anyio.create_memory_object_stream[tuple[int, Any]](capacity)
        self._next_seq = 0
        self._next_delivery = 0
        self._enqueued: deque[tuple[int, float]] = deque()
        self._tracker = CommitTracker(_MAX_UNACKED)
        self._peak = 0
        self._sent = 0
        self._acked = 0
        # Senders waiting for room, woken one per message taken. anyio's own waiting-sender path
        # can hand an item to a receiver after the sender's cancellation was delivered, so a
        # cancelled send would have sent anyway; waiting here holds no item, so it cannot.
        self._room_waiters: deque[anyio.Event] = deque()

    def sender(self) -> "MemorySender":
        """Return a new sender handle (a clone); close it when this producer is done."""
        return MemorySender(self, self._send.clone())

    def receiver(self) -> "MemoryReceiver":
        """Return a new receiver handle (a clone)."""
        return MemoryReceiver(self, self._receive.clone())

    async def close_originals(self) -> None:
        """Close the channel's own handles so only the clones decide when it ends."""
        await self._send.aclose()
        await self._receive.aclose()

    def statistics(self) -> ChannelStats:
        """Return depth, peak, waiting tasks, counters and the age of the oldest queued message."""
        stats = self._send.statistics()
        oldest = time.monotonic() - self._enqueued[0][1] if self._enqueued else 0.0
        return ChannelStats(
            name=self.name,
            capacity=self.capacity,
            depth=stats.current_buffer_used,
            peak_depth=self._peak,
            senders_waiting=len(self._room_waiters),
            receivers_waiting=stats.tasks_waiting_receive,
            sent=self._sent,
            acked=self._acked,
            in_flight=len(self._tracker),
            oldest_age=oldest,
        )

    # -- bookkeeping used by the handles ------------------------------------------------------

    def _wake_one_sender(self) -> None:
        if self._room_waiters:
            self._room_waiters.popleft().set()

    def _wake_all_senders(self) -> None:
        while self._room_waiters:
            self._room_waiters.popleft().set()

    def _after_send(self) -> None:
        self._sent += 1
        # Sent but not yet taken: the buffer's depth, without building anyio's statistics object
        # on every send (one may be on its way to an already waiting receiver).
        depth = len(self._enqueued)
        if depth > self._peak:
            self._peak = depth

    def _delivery(self, item: tuple[int, Any]) -> Delivery:
        seq, message = item
        self._wake_one_sender()
        # Messages sent before this one have left the buffer too (a receiver woken with one may not have run yet).
        while self._enqueued and self._enqueued[0][0] <= seq:
            self._enqueued.popleft()
        # Track in the order deliveries are handed out, not by send sequence: with several
        # receivers, one woken with an earlier message may run after another took a later one.
        position = self._next_delivery
        self._next_delivery += 1
        self._tracker.track(position)

        def ack() -> None:
            self._tracker.done(position)
            self._acked += 1

        return Delivery(message, ack)


class MemorySender(SenderBase):
    """A producer's handle on a :class:`MemoryChannel`."""

    __slots__ = ("_channel", "_stream")

    def __init__(self, channel: MemoryChannel, stream: MemoryObjectSendStream[tuple[int, Any]]) -> None:
        self._channel = channel
        self._stream = stream

    async def send(self, message: Any) -> None:
        """Send, waiting while the channel is full; a cancelled send has not sent.

        A cancellation point, but a scheduling point only when it has to wait for room: a stage
        handing on a burst keeps going until it waits for room or for input (which every stage
        does between bursts), instead of a trip through the scheduler per message.

        Raises anyio.ClosedResourceError if this handle is closed, anyio.BrokenResourceError when
        every receiver is gone.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        channel = self._channel
        while True:
            try:
                self.send_nowait(message)
                return
            except anyio.WouldBlock:
                pass
            room = anyio.Event()
            channel._room_waiters.append(room)
            try:
                await room.wait()
            except BaseException:
                if room.is_set():
                    channel._wake_one_sender()  # the room it was woken for goes to the next one
                else:
                    channel._room_waiters.remove(room)
                raise

    def send_nowait(self, message: Any) -> None:
        """Send without waiting. Raises anyio.WouldBlock when full."""
        channel = self._channel
        seq = channel._next_seq
        self._stream.send_nowait((seq, message))
        channel._next_seq += 1
        channel._enqueued.append((seq, time.monotonic()))
        channel._after_send()

    async def confirm(self) -> None:
        """Nothing to wait for: a memory channel holds messages only as long as this process lives."""

    async def aclose(self) -> None:
        """Close this handle."""
        await self._stream.aclose()
        self._channel._wake_all_senders()  # a sender waiting on this handle sees it closed


class MemoryReceiver(ReceiverBase):
    """A consumer's handle on a :class:`MemoryChannel`; iterate it for deliveries."""

    __slots__ = ("_channel", "_stream")

    def __init__(self, channel: MemoryChannel, stream: MemoryObjectReceiveStream[tuple[int, Any]]) -> None:
        self._channel = channel
        self._stream = stream

    async def receive(self) -> Delivery:
        """Wait for the next delivery. Raises anyio.EndOfStream once every sender is closed."""
        return self._channel._delivery(await self._stream.receive())

    def receive_nowait(self) -> Delivery:
        """Take a buffered delivery. Raises anyio.WouldBlock or anyio.EndOfStream."""
        return self._channel._delivery(self._stream.receive_nowait())

    async def aclose(self) -> None:
        """Close this handle; waiting senders wake to find out whether any receiver is left."""
        await self._stream.aclose()
        self._channel._wake_all_senders()

