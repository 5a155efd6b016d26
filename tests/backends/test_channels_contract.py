"""The channel contract (channels.py), run against every channel backend on trio and asyncio.

To add a backend, append its factory ``(name, capacity) -> Channel`` to ``CHANNEL_FACTORIES``, e.g.
``pytest.param(kafka_channel, id="kafka", marks=pytest.mark.services)``. Waits are bounded by
``fail_after`` guards; "is blocked" is proved with ``wait_all_tasks_blocked``, never with sleeps.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from minisentry.backends.memory import MemoryChannel
from minisentry.channels import Channel, ChannelReceiver, ChannelSender
from minisentry.errors import PipelineError

pytestmark = pytest.mark.anyio

CHANNEL_FACTORIES = [
    pytest.param(MemoryChannel, id="memory"),
]

GUARD = 10  # seconds: only ever reached when the behaviour under test is broken


@pytest.fixture(params=CHANNEL_FACTORIES)
def channel_factory(request):
    return request.param


@pytest.fixture
async def open_channel(channel_factory, anyio_backend):
    """Build a channel and take its handles, then close the originals as the pipeline does, so that
    these clones alone decide when the channel ends. Every handle is closed after the test."""
    handles: list = []

    async def open_(capacity: int = 8, *, senders: int = 1, receivers: int = 1, name: str = "edge"):
        channel = channel_factory(name, capacity)
        sender_handles = [channel.sender() for _ in range(senders)]
        receiver_handles = [channel.receiver() for _ in range(receivers)]
        await channel.close_originals()
        handles.extend(sender_handles + receiver_handles)
        return channel, sender_handles, receiver_handles

    yield open_
    for handle in handles:
        await handle.aclose()


async def drain(receiver: ChannelReceiver) -> list:
    """Receive and ack until end of stream; return the messages."""
    messages = []
    with anyio.fail_after(GUARD):
        async for delivery in receiver:
            messages.append(delivery.message)
            delivery.ack()
    return messages


async def test_handles_satisfy_the_protocols(open_channel):
    channel, [sender], [receiver] = await open_channel(3, name="process")
    assert isinstance(channel, Channel)
    assert (channel.name, channel.capacity) == ("process", 3)
    assert isinstance(sender, ChannelSender)
    assert isinstance(receiver, ChannelReceiver)


# -- delivery order ------------------------------------------------------------------------------


async def test_fifo_delivery(open_channel):
    _, [sender], [receiver] = await open_channel(100)
    async with sender:
        for i in range(50):
            await sender.send({"n": i})
        for i in range(50, 60):
            sender.send_nowait({"n": i})
    assert await drain(receiver) == [{"n": i} for i in range(60)]


async def test_fifo_through_a_small_buffer_with_a_concurrent_consumer(open_channel):
    _, [sender], [receiver] = await open_channel(2)
    received: list = []

    async def consume() -> None:
        received.extend(await drain(receiver))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with sender:
            for i in range(200):
                await sender.send(i)
    assert received == list(range(200))


# -- bounded -------------------------------------------------------------------------------------


async def test_capacity_bounds_send_nowait(open_channel):
    channel, [sender], [receiver] = await open_channel(3)
    for i in range(3):
        sender.send_nowait(i)
    with pytest.raises(anyio.WouldBlock):
        sender.send_nowait(3)
    stats = channel.statistics()
    assert (stats.depth, stats.sent, stats.capacity) == (3, 3, 3)
    assert receiver.receive_nowait().message == 0
    sender.send_nowait(3)  # room again
    with pytest.raises(anyio.WouldBlock):
        sender.send_nowait(4)
    assert [receiver.receive_nowait().message for _ in range(3)] == [1, 2, 3]


async def test_send_waits_until_a_receiver_takes_one(open_channel):
    channel, [sender], [receiver] = await open_channel(2)
    sender.send_nowait("a")
    sender.send_nowait("b")
    sent = anyio.Event()

    async def send_third() -> None:
        await sender.send("c")
        sent.set()

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_third)
            await anyio.wait_all_tasks_blocked()
            assert not sent.is_set()
            assert channel.statistics().senders_waiting == 1
            assert receiver.receive_nowait().message == "a"
            await sent.wait()
    assert channel.statistics().senders_waiting == 0
    await sender.aclose()
    assert await drain(receiver) == ["b", "c"]


async def test_receive_waits_for_a_message(open_channel):
    channel, [sender], [receiver] = await open_channel(2)
    got: list = []

    async def receive_one() -> None:
        got.append((await receiver.receive()).message)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_one)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            assert channel.statistics().receivers_waiting == 1
            await sender.send("x")
    assert got == ["x"]


async def test_a_cancelled_send_leaves_no_trace(open_channel):
    channel, [sender], [receiver] = await open_channel(1)
    sender.send_nowait("kept")
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.send, "cancelled")
            await anyio.wait_all_tasks_blocked()
            assert channel.statistics().senders_waiting == 1
            tg.cancel_scope.cancel()
    assert receiver.receive_nowait().message == "kept"
    with pytest.raises(anyio.WouldBlock):
        receiver.receive_nowait()
    stats = channel.statistics()
    assert (stats.depth, stats.senders_waiting, stats.sent, stats.oldest_age) == (0, 0, 1, 0.0)


async def test_a_send_cancelled_while_a_receiver_makes_room_either_sent_or_not(open_channel):
    """The relay answers 429 when its timed send is cancelled, so a cancelled send must not have sent.

    The cancellation is delivered, and before the waiting sender runs again a receiver makes room
    in the same step: the sender must see exactly one of "sent" or "cancelled", never both.
    """
    channel, [sender], [receiver] = await open_channel(1)
    sender.send_nowait("first")
    outcome: list[str] = []

    async def send_second(scope_ready: anyio.Event, holder: list) -> None:
        with anyio.CancelScope() as scope:
            holder.append(scope)
            scope_ready.set()
            await sender.send("second")
            outcome.append("sent")
        if scope.cancelled_caught:
            outcome.append("cancelled")

    holder: list = []
    ready = anyio.Event()
    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_second, ready, holder)
            await ready.wait()
            await anyio.wait_all_tasks_blocked()
            holder[0].cancel()
            first = receiver.receive_nowait()  # same step: no checkpoint between cancel and receive
            first.ack()
    await sender.aclose()
    rest = await drain(receiver)
    assert first.message == "first"
    assert outcome in (["sent"], ["cancelled"])
    assert rest == (["second"] if outcome == ["sent"] else []), outcome
    assert channel.statistics().sent == 1 + len(rest)


# -- clone and close -----------------------------------------------------------------------------


async def test_end_of_stream_only_after_every_sender_clone_closed_and_buffer_drained(open_channel):
    _, [first, second], [receiver] = await open_channel(8, senders=2)
    await first.send("from first")
    await first.aclose()
    assert receiver.receive_nowait().message == "from first"
    with pytest.raises(anyio.WouldBlock):  # the second sender is still open: no end yet
        receiver.receive_nowait()
    await second.send("from second, 1")
    await second.send("from second, 2")
    await second.aclose()
    # every sender is closed, but the buffer is delivered before the end
    assert receiver.receive_nowait().message == "from second, 1"
    assert (await receiver.receive()).message == "from second, 2"
    with pytest.raises(anyio.EndOfStream):
        receiver.receive_nowait()
    with pytest.raises(anyio.EndOfStream):
        await receiver.receive()


async def test_waiting_receivers_wake_at_end_of_stream(open_channel):
    _, [sender], receivers = await open_channel(4, receivers=3)
    ended: list[int] = []

    async def consume(i: int) -> None:
        await drain(receivers[i])
        ended.append(i)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(consume, i)
            await anyio.wait_all_tasks_blocked()
            assert ended == []
            await sender.aclose()
    assert sorted(ended) == [0, 1, 2]


async def test_each_producer_closes_its_own_clone(open_channel):
    _, senders, [receiver] = await open_channel(4, senders=3)
    received: list = []

    async def produce(sender: ChannelSender, tag: str) -> None:
        async with sender:
            for i in range(20):
                await sender.send((tag, i))

    async def consume() -> None:
        received.extend(await drain(receiver))

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for sender, tag in zip(senders, "abc"):
                tg.start_soon(produce, sender, tag)
    assert sorted(received) == sorted((tag, i) for tag in "abc" for i in range(20))
    for tag in "abc":  # per producer, order is kept
        assert [i for t, i in received if t == tag] == list(range(20))


@pytest.mark.parametrize("capacity", [1, 4, 64])
async def test_concurrent_sends_on_one_shared_handle(open_channel, capacity):
    # The relay shares one sender among all request handlers; the scheduler picks who goes first.
    for _ in range(5):
        channel, [sender], [receiver] = await open_channel(capacity)
        received: list = []

        async def consume() -> None:
            received.extend(await drain(receiver))

        with anyio.fail_after(GUARD):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                async with anyio.create_task_group() as senders:
                    for i in range(100):
                        senders.start_soon(sender.send, i)
                await sender.aclose()
        assert sorted(received) == list(range(100))
        assert channel.statistics().acked == 100


async def test_send_on_a_closed_handle_raises(open_channel):
    _, [kept_open, sender], _ = await open_channel(4, senders=2)
    await sender.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await sender.send(1)
    with pytest.raises(anyio.ClosedResourceError):
        sender.send_nowait(1)


# -- several receivers ---------------------------------------------------------------------------


async def test_several_receivers_share_the_messages_exactly_once(open_channel):
    channel, [sender], receivers = await open_channel(4, receivers=3)
    received: list = []

    async def consume(receiver: ChannelReceiver) -> None:
        async for delivery in receiver:
            received.append(delivery.message)
            await anyio.lowlevel.checkpoint()
            delivery.ack()

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            for receiver in receivers:
                tg.start_soon(consume, receiver)
            async with sender:
                for i in range(300):
                    await sender.send(i)
    assert sorted(received) == list(range(300))
    stats = channel.statistics()
    assert (stats.sent, stats.acked, stats.in_flight, stats.depth) == (300, 300, 0, 0)


async def test_a_woken_receiver_may_run_after_another_took_a_later_message(open_channel):
    # Receiver one waits; "a" is handed to it, "b" is buffered and taken by receiver two before
    # receiver one runs again. Both deliveries must be valid and ackable, in any order.
    channel, [sender], [one, two] = await open_channel(4, receivers=2)
    deliveries: dict = {}

    async def receive_one() -> None:
        deliveries["one"] = await one.receive()

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_one)
            await anyio.wait_all_tasks_blocked()
            sender.send_nowait("a")
            sender.send_nowait("b")
            deliveries["two"] = two.receive_nowait()
    assert {name: d.message for name, d in deliveries.items()} == {"one": "a", "two": "b"}
    assert channel.statistics().in_flight == 2
    deliveries["two"].ack()
    deliveries["one"].ack()
    stats = channel.statistics()
    assert (stats.acked, stats.in_flight) == (2, 0)


# -- acknowledgements and statistics -------------------------------------------------------------


async def test_statistics_of_a_fresh_channel(open_channel):
    channel, _, _ = await open_channel(5, name="store")
    stats = channel.statistics()
    assert (stats.name, stats.capacity) == ("store", 5)
    assert (stats.depth, stats.peak_depth, stats.sent, stats.acked, stats.in_flight) == (0, 0, 0, 0, 0)
    assert (stats.senders_waiting, stats.receivers_waiting, stats.oldest_age) == (0, 0, 0.0)


async def test_statistics_count_sends_receives_and_acks(open_channel):
    channel, [sender], [receiver] = await open_channel(5)
    for i in range(4):
        await sender.send(i)
    stats = channel.statistics()
    assert (stats.depth, stats.peak_depth, stats.sent, stats.in_flight, stats.acked) == (4, 4, 4, 0, 0)

    first, second, third = [await receiver.receive() for _ in range(3)]
    stats = channel.statistics()
    assert (stats.depth, stats.peak_depth, stats.in_flight, stats.acked) == (1, 4, 3, 0)

    third.ack()  # acks may come in any order
    first.ack()
    stats = channel.statistics()
    # in_flight counts deliveries not yet committed in order: the acked third waits behind the second
    assert (stats.in_flight, stats.acked) == (2, 2)
    second.ack()
    await sender.send(4)
    stats = channel.statistics()
    assert (stats.depth, stats.peak_depth, stats.sent, stats.in_flight, stats.acked) == (2, 4, 5, 0, 3)


async def test_double_ack_raises(open_channel):
    channel, [sender], [receiver] = await open_channel(2)
    await sender.send("x")
    await sender.send("y")
    first = await receiver.receive()
    first.ack()
    with pytest.raises(PipelineError):
        first.ack()
    second = await receiver.receive()
    second.ack()
    with pytest.raises(PipelineError):
        second.ack()
    with pytest.raises(PipelineError):
        first.ack()
    assert channel.statistics().acked == 2


async def test_oldest_age_is_the_age_of_the_oldest_buffered_message(open_channel):
    channel, [sender], [receiver] = await open_channel(4)
    await sender.send("old")
    await anyio.sleep(0.3)  # only makes the two messages' ages measurably different
    await sender.send("new")
    assert channel.statistics().oldest_age >= 0.3
    (await receiver.receive()).ack()
    assert 0 <= channel.statistics().oldest_age < 0.3  # now "new" is the oldest
    (await receiver.receive()).ack()
    assert channel.statistics().oldest_age == 0.0


def test_a_memory_channel_needs_room_for_one_message():
    with pytest.raises(ValueError, match="capacity must be at least 1, got 0"):
        MemoryChannel("edge", 0)
