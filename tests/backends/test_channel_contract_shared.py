"""The channel contract every backend passes, in-process (memory) and durable (Kafka) alike.

What a stage may rely on whatever carries its messages: the handles satisfy the protocols; one
project's messages arrive in the order they were sent; several receivers share the messages, each
delivered once; acknowledgements are counted and a second one for the same delivery is refused;
``confirm`` returns once what was sent is held; and at the end (every sender closed — plus, for
Kafka, the pipeline's ``finish``) the receivers drain what this process holds and then see the end
of the stream (Kafka keeps what it did not hand out for the group's next consumer).

How each backend is bounded differs and is tested with it: in-process, a full channel blocks
``send`` and clone-and-close ends the stream by itself (test_channels_contract.py); durably, the
consumer pauses at ``capacity`` unacknowledged deliveries, and commits stop at the first
unacknowledged offset, with redelivery after a crash, dead letters, payload references and
rebalances (test_kafka_channels.py). Each backend is driven through a harness that does what the
Pipeline does for it (start the Kafka producer and consumer tasks, call ``finish`` at shutdown).
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import anyio
import pytest

from minisentry.backends.memory import MemoryChannel
from minisentry.channels import Channel, ChannelReceiver, ChannelSender
from minisentry.errors import PipelineError
from minisentry.messages import EventMessage
from tests import services

pytestmark = pytest.mark.anyio

GUARD = 60  # seconds: only reached when the behaviour under test is broken


class Harness:
    """A channel with its handles, and the backend's way to end it."""

    def __init__(self, channel: Any, senders: list, receivers: list, end: Any) -> None:
        self.channel, self.senders, self.receivers, self._end = channel, senders, receivers, end

    async def end(self) -> None:
        """Close every sender and end the stream the way the Pipeline does at shutdown."""
        for sender in self.senders:
            await sender.confirm()
            await sender.aclose()
        await self._end()


@asynccontextmanager
async def memory_harness(capacity: int, senders: int, receivers: int) -> AsyncIterator[Harness]:
    channel = MemoryChannel("ingest", capacity)
    send_handles = [channel.sender() for _ in range(senders)]
    receive_handles = [channel.receiver() for _ in range(receivers)]
    await channel.close_originals()

    async def end() -> None:
        pass  # clone-and-close: the last sender closing ends the stream

    try:
        yield Harness(channel, send_handles, receive_handles, end)
    finally:
        for handle in send_handles + receive_handles:
            await handle.aclose()


@asynccontextmanager
async def kafka_harness(capacity: int, senders: int, receivers: int) -> AsyncIterator[Harness]:
    services.require_module("confluent_kafka")
    from minisentry.config import Config, KafkaConfig
    from minisentry.plugins.kafka_channels import KafkaChannels

    prefix = f"contract-{uuid.uuid4().hex[:10]}"
    config = KafkaConfig(bootstrap_servers=services.kafka_bootstrap(), topic_prefix=prefix, group_prefix=prefix,
                         partitions=2, commit_interval=0.1, session_timeout=6.0, delivery_timeout=10.0)
    bound = KafkaChannels().bind(Config(kafka=config), None)
    await anyio.to_thread.run_sync(bound.prepare)
    channel = bound("ingest", capacity)
    send_handles = [channel.sender() for _ in range(senders)]
    receive_handles = [channel.receiver() for _ in range(receivers)]
    async with anyio.create_task_group() as tg:
        await tg.start(bound.run)
        await channel.close_originals()
        await tg.start(channel.run)

        async def end() -> None:
            channel.finish()

        try:
            yield Harness(channel, send_handles, receive_handles, end)
        finally:
            for handle in receive_handles:
                await handle.aclose()
            tg.cancel_scope.cancel()
    await anyio.to_thread.run_sync(bound.close)


HARNESSES = [
    pytest.param(memory_harness, id="memory"),
    pytest.param(kafka_harness, id="kafka", marks=pytest.mark.services),
]


@pytest.fixture(params=HARNESSES)
def harness(request):
    return request.param


def _event(n: int, project_id: int = 1) -> EventMessage:
    return EventMessage(project_id=project_id, event_id=f"{n:032x}", item_type="event", received=float(n),
                        payload=b"{}")


async def _drain(receiver: ChannelReceiver) -> list:
    got = []
    with anyio.fail_after(GUARD):
        async for delivery in receiver:
            got.append(delivery.message)
            delivery.ack()
    return got


async def test_handles_satisfy_the_protocols(harness):
    async with harness(4, 1, 1) as h:
        assert isinstance(h.channel, Channel)
        assert (h.channel.name, h.channel.capacity) == ("ingest", 4)
        assert isinstance(h.senders[0], ChannelSender)
        assert isinstance(h.receivers[0], ChannelReceiver)
        await h.end()
        assert await _drain(h.receivers[0]) == []


async def _take(receiver: ChannelReceiver, count: int) -> list:
    got = []
    with anyio.fail_after(GUARD):
        while len(got) < count:
            delivery = await receiver.receive()
            got.append(delivery.message)
            delivery.ack()
    return got


async def test_one_projects_messages_arrive_in_order_then_the_stream_ends(harness):
    messages = [_event(n, project_id=n % 3 + 1) for n in range(60)]
    async with harness(16, 1, 1) as h:
        got: list = []

        async def consume() -> None:
            got.extend(await _take(h.receivers[0], len(messages)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for message in messages:
                await h.senders[0].send(message)
        await h.end()
        assert await _drain(h.receivers[0]) == []  # the end of the stream, nothing more
    assert sorted(got, key=lambda m: m.received) == messages
    for project_id in (1, 2, 3):
        assert [m for m in got if m.project_id == project_id] == [m for m in messages if m.project_id == project_id]


async def test_several_receivers_share_the_messages_each_delivered_once(harness):
    total = 90
    async with harness(8, 2, 3) as h:
        seen: list = []
        done = anyio.Event()

        async def consume(receiver: ChannelReceiver) -> None:
            with anyio.fail_after(GUARD):
                async for delivery in receiver:
                    seen.append(delivery.message.received)
                    delivery.ack()
                    if len(seen) == total:
                        done.set()
                    await anyio.sleep(0)  # let the other receivers take their share

        async with anyio.create_task_group() as tg:
            for receiver in h.receivers:
                tg.start_soon(consume, receiver)
            for n in range(total):
                await h.senders[n % 2].send(_event(n, project_id=n % 5 + 1))
            with anyio.fail_after(GUARD):
                await done.wait()
            await h.end()  # every receiver then sees the end
    assert sorted(seen) == [float(n) for n in range(total)]


async def test_acknowledgements_are_counted_and_a_second_one_is_refused(harness):
    async with harness(8, 1, 1) as h:
        for n in range(5):
            await h.senders[0].send(_event(n))
        await h.senders[0].confirm()
        receiver = h.receivers[0]
        with anyio.fail_after(GUARD):
            deliveries = [await receiver.receive() for _ in range(5)]
        stats = h.channel.statistics()
        assert (stats.acked, stats.in_flight) == (0, 5)
        for delivery in deliveries[:3]:
            delivery.ack()
        stats = h.channel.statistics()
        assert (stats.acked, stats.in_flight) == (3, 2)
        with pytest.raises(PipelineError):
            deliveries[0].ack()
        for delivery in deliveries[3:]:
            delivery.ack()
        assert h.channel.statistics().in_flight == 0
        await h.end()
        assert await _drain(receiver) == []
