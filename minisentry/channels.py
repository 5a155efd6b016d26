"""The channel protocol every stage talks to, whatever carries the messages.

A channel connects two stages. It is always bounded: ``send`` waits while it is full, which is how
backpressure travels from the store back to the HTTP edge. Receivers get :class:`Delivery` objects
and must call ``ack()`` once the message's work is done *and* its results were handed on (sent to
the next channel or written to the store). Acknowledgements may come in any order; a channel that
can redeliver (Kafka) commits them strictly in order (see ``commits.py``), which gives
at-least-once delivery; every writer downstream is idempotent, which makes it exactly-once storage.

Shutdown follows trio's clone-and-close idiom: every producer owns a sender clone and closes it when
it is done; when the last sender closes, receivers drain what is buffered and then see the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Protocol, runtime_checkable

import anyio

__all__ = ["Delivery", "ChannelStats", "Channel", "ChannelSender", "ChannelReceiver", "ChannelFactory",
           "ReceiverBase", "SenderBase", "receive_batch"]


class Delivery:
    """A received message plus the acknowledgement its consumer owes once the work is done."""

    __slots__ = ("message", "_ack")

    def __init__(self, message: Any, ack: Callable[[], None]) -> None:
        self.message = message
        self._ack = ack

    def ack(self) -> None:
        """Acknowledge the message (never blocks). Raises PipelineError on a double ack."""
        self._ack()


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """A snapshot of one channel, shaped like trio's ``statistics()`` plus delivery counters."""

    name: str
    capacity: int
    depth: int
    peak_depth: int
    senders_waiting: int
    receivers_waiting: int
    sent: int
    acked: int
    in_flight: int
    oldest_age: float


@runtime_checkable
class ChannelSender(Protocol):
    """One producer's handle. ``send`` blocks while the channel is full; close it when done."""

    async def send(self, message: Any) -> None:
        """Send, waiting for room. Raises anyio.ClosedResourceError if this handle was closed.

        A send that is cancelled has not sent: the relay answers 429 when its timed send is
        cancelled, so a message that went through anyway would be stored against a refusal.
        """

    def send_nowait(self, message: Any) -> None:
        """Send without waiting. Raises anyio.WouldBlock when the channel is full."""

    async def confirm(self) -> None:
        """Wait until every message sent on this channel so far survives a crash of this process.

        A no-op for memory channels; Kafka waits for the broker's acknowledgement. The relay calls
        it before answering 200. Raises BackendError when the messages could not be made durable.
        """

    async def aclose(self) -> None:
        """Close this handle; the channel ends when every sender handle is closed."""

    async def __aenter__(self) -> "ChannelSender": ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class ChannelReceiver(Protocol):
    """One consumer's handle: iterate it for deliveries until the channel ends."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def receive(self) -> Delivery:
        """Wait for the next delivery. Raises anyio.EndOfStream when all senders are closed."""

    def receive_nowait(self) -> Delivery:
        """Take a buffered delivery. Raises anyio.WouldBlock if none, anyio.EndOfStream at the end."""

    async def aclose(self) -> None:
        """Close this handle."""

    async def __aenter__(self) -> "ChannelReceiver": ...

    async def __aexit__(self, *exc: object) -> None: ...


@runtime_checkable
class Channel(Protocol):
    """A named, bounded channel. ``sender()``/``receiver()`` hand out new clones each call."""

    name: str
    capacity: int

    def sender(self) -> ChannelSender: ...

    def receiver(self) -> ChannelReceiver: ...

    async def close_originals(self) -> None:
        """Close the handles the channel itself holds, so that clones alone decide its end."""

    def statistics(self) -> ChannelStats: ...


class ChannelFactory(Protocol):
    """What a channel backend plugin registers: build a channel for one pipeline edge."""

    name: str

    def __call__(self, name: str, capacity: int) -> Channel: ...


class ReceiverBase:
    """Iteration and ``async with`` for a receiver class that defines ``receive()`` and ``aclose()``."""

    __slots__ = ()

    def __aiter__(self) -> "ReceiverBase":
        return self

    async def __anext__(self) -> Delivery:
        try:
            return await self.receive()  # type: ignore[attr-defined]
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> "ReceiverBase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()  # type: ignore[attr-defined]


class SenderBase:
    """``async with`` for a sender class that defines ``aclose()``."""

    __slots__ = ()

    async def __aenter__(self) -> "SenderBase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()  # type: ignore[attr-defined]


async def receive_batch(receiver: "ChannelReceiver", limit: int) -> list[Delivery]:
    """Wait for one delivery, then take what is already buffered, up to ``limit`` in all.

    Returns an empty list once the channel has ended. Taking a burst per wake-up keeps a consumer
    level with producers that each add one message per scheduler round.
    """
    try:
        batch = [await receiver.receive()]
    except anyio.EndOfStream:
        return []
    while len(batch) < limit:
        try:
            batch.append(receiver.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch
