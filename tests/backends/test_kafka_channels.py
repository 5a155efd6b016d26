"""Kafka channels against the real broker: in-order commits, redelivery, backpressure, payloads, dead letters.

Every test uses its own topic prefix and consumer groups, so tests never see each other's messages.
A second ``KafkaChannel`` object with the same config stands for another process of the same stage.
"""

from __future__ import annotations

import time
import uuid

import anyio
import pytest

from minisentry.config import KafkaConfig
from minisentry.errors import BackendError, PipelineError
from minisentry.messages import EventMessage
from tests import services

pytestmark = [pytest.mark.anyio, pytest.mark.services]

GUARD = 60  # seconds: only reached when the behaviour under test is broken


class DictPayloads:
    """The payload-store protocol on a dict (a unit-level stand-in for the memory payload store)."""

    name = "dict"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, ttl: float) -> None:
        self.data[key] = data

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def _event(n: int, project_id: int = 1, size: int = 10) -> EventMessage:
    return EventMessage(project_id=project_id, event_id=f"{n:032x}", item_type="event", received=float(n),
                        payload=b"x" * size)


@pytest.fixture
def kafka_config() -> KafkaConfig:
    services.require_module("confluent_kafka")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    return KafkaConfig(bootstrap_servers=services.kafka_bootstrap(), topic_prefix=prefix, group_prefix=prefix,
                       partitions=2, commit_interval=0.1, session_timeout=6.0, delivery_timeout=10.0)


@pytest.fixture
def bound(kafka_config):
    """Build channel sets (one per simulated process); topics are created once."""
    from minisentry.config import Config
    from minisentry.plugins.kafka_channels import KafkaChannels

    made = []

    def make(payloads=None, config: KafkaConfig | None = None):
        channels = KafkaChannels().bind(Config(kafka=config or kafka_config), payloads)
        if not made:
            channels.prepare()
        made.append(channels)
        return channels

    yield make
    for channels in made:
        channels.producer.flush_blocking(5)


@pytest.fixture
async def receivers(anyio_backend):
    """Receiver handles opened by a test; closed after it (as stage workers close theirs)."""
    opened: list = []

    def open_(channel):
        receiver = channel.receiver()
        opened.append(receiver)
        return receiver

    yield open_
    for receiver in opened:
        await receiver.aclose()


async def _serve(tg, bound_channels, channel):
    """Start the shared producer and the channel's consumer pump like the Pipeline does."""
    await tg.start(bound_channels.run)
    await channel.close_originals()
    await tg.start(channel.run)


async def _receive(receiver, count: int) -> list:
    got = []
    with anyio.fail_after(GUARD):
        while len(got) < count:
            got.append(await receiver.receive())
    return got


async def _send_confirmed(channels, edge: str, messages: list) -> None:
    """Send from a separate 'process' and wait until the broker has every message."""
    sender = channels(edge, 1000).sender()
    async with anyio.create_task_group() as tg:
        await tg.start(channels.run)
        for message in messages:
            await sender.send(message)
        with anyio.fail_after(GUARD):
            await sender.confirm()
        tg.cancel_scope.cancel()


async def test_messages_round_trip_keyed_by_project_and_confirmed(bound, receivers):
    messages = [_event(n, project_id=n % 3 + 1) for n in range(30)]
    await _send_confirmed(bound(), "process", messages)  # on the broker now: another process can read them

    process_b = bound()
    channel = process_b("process", 100)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, process_b, channel)
        deliveries = await _receive(receiver, 30)
        for delivery in deliveries:
            delivery.ack()
        with pytest.raises(PipelineError, match="acknowledged twice"):
            deliveries[0].ack()
        channel.finish()
        with anyio.fail_after(GUARD):
            with pytest.raises(anyio.EndOfStream):
                await receiver.receive()
        tg.cancel_scope.cancel()
    got = [d.message for d in deliveries]
    assert sorted(got, key=lambda m: m.event_id) == messages
    # One project's events share a partition, so they arrive in the order they were sent.
    for project_id in (1, 2, 3):
        assert [m for m in got if m.project_id == project_id] == [m for m in messages if m.project_id == project_id]
    stats = channel.statistics()
    assert (stats.sent, stats.acked, stats.in_flight) == (30, 30, 0)


async def test_commit_stops_at_the_first_unacknowledged_message(bound, kafka_config, receivers):
    # One partition, so the commit position is easy to reason about.
    config = KafkaConfig(**{**kafka_config.__dict__, "partitions": 1})
    await _send_confirmed(bound(config=config), "store", [_event(n) for n in range(10)])

    first = bound(config=config)
    channel = first("store", 100)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, first, channel)
        deliveries = await _receive(receiver, 10)
        for index, delivery in enumerate(deliveries):
            if index != 5:  # message 5 is still "being worked on" when this process dies
                delivery.ack()
        with anyio.fail_after(GUARD):
            while channel.commits == 0:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()  # the crash: no finish, no final commit of later work

    # The next consumer of the group re-reads from message 5: 6..9 again (at-least-once), 0..4 never.
    second = bound(config=config)
    channel = second("store", 100)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, second, channel)
        redelivered = await _receive(receiver, 5)
        for delivery in redelivered:
            delivery.ack()
        await anyio.sleep(0.5)
        assert receiver.receive_nowait is not None
        with pytest.raises(anyio.WouldBlock):
            receiver.receive_nowait()
        tg.cancel_scope.cancel()
    assert [d.message.received for d in redelivered] == [5.0, 6.0, 7.0, 8.0, 9.0]


async def test_at_capacity_the_consumer_pauses_until_acks_make_room(bound, receivers):
    await _send_confirmed(bound(), "ingest", [_event(n) for n in range(40)])

    consumer_side = bound()
    channel = consumer_side("ingest", 5)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, consumer_side, channel)
        held = await _receive(receiver, 5)
        await anyio.sleep(1.0)  # plenty of fetch rounds: none may exceed the capacity
        stats = channel.statistics()
        assert stats.in_flight == 5 and stats.sent == 5
        with pytest.raises(anyio.WouldBlock):
            receiver.receive_nowait()
        for delivery in held:
            delivery.ack()
        rest = []
        with anyio.fail_after(GUARD):
            while len(rest) < 35:
                delivery = await receiver.receive()
                assert channel.statistics().in_flight <= 5
                delivery.ack()
                rest.append(delivery)
        tg.cancel_scope.cancel()
    assert channel.statistics().peak_depth <= 5


async def test_large_messages_travel_through_the_payload_store(bound, kafka_config, receivers):
    payloads = DictPayloads()
    config = KafkaConfig(**{**kafka_config.__dict__, "payload_threshold": 1000})
    producer_side = bound(payloads, config=config)
    big, small = _event(1, size=50_000), _event(2, size=10)
    with pytest.raises(anyio.WouldBlock):
        producer_side("process", 10).sender().send_nowait(big)  # a payload-store round trip needs send()
    await _send_confirmed(producer_side, "process", [big, small])
    assert len(payloads.data) == 1

    consumer_side = bound(payloads, config=config)
    channel = consumer_side("process", 10)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, consumer_side, channel)
        deliveries = await _receive(receiver, 2)
        assert sorted((d.message for d in deliveries), key=lambda m: m.received) == [big, small]
        for delivery in deliveries:
            delivery.ack()
        with anyio.fail_after(GUARD):
            while payloads.data:  # deleted once the offset that carried it is committed
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


async def test_undecodable_records_and_lost_payloads_go_to_the_dead_letter_topic(bound, kafka_config, receivers):
    ck = services.require_module("confluent_kafka")
    payloads = DictPayloads()
    config = KafkaConfig(**{**kafka_config.__dict__, "partitions": 1})
    producer_side = bound(payloads, config=config)
    topic = f"{config.topic_prefix}.symbolicate"
    producer_side.producer.produce(topic, b"1", b"this is not a minisentry record")
    producer_side.producer.produce(topic, b"1", b"", [("minisentry-payload", b"expired-key")])
    await _send_confirmed(producer_side, "symbolicate", [_event(7)])

    consumer_side = bound(payloads, config=config)
    channel = consumer_side("symbolicate", 10)
    receiver = receivers(channel)
    async with anyio.create_task_group() as tg:
        await _serve(tg, consumer_side, channel)
        [delivery] = await _receive(receiver, 1)  # the good one is not held up behind the bad ones
        assert delivery.message == _event(7)
        delivery.ack()
        with anyio.fail_after(GUARD):
            while channel.dead_lettered < 2:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()

    dead = ck.Consumer({"bootstrap.servers": config.bootstrap_servers, "group.id": f"{config.group_prefix}.reader",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        dead.subscribe([f"{topic}.dlq"])
        records = []
        deadline = time.monotonic() + GUARD
        while len(records) < 2 and time.monotonic() < deadline:
            message = dead.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
    finally:
        dead.close()
    reasons = [dict(m.headers())["minisentry-reason"].decode() for m in records]
    assert "undecodable message record" in reasons[0]
    assert "payload expired-key is missing" in reasons[1]
    assert records[0].value() == b"this is not a minisentry record"
    assert dict(records[0].headers())["minisentry-source"].decode() == f"{topic}/0/0"


async def test_two_consumers_of_one_stage_share_the_partitions_and_lose_nothing(bound, receivers):
    total = 200
    await _send_confirmed(bound(), "process", [_event(n, project_id=n % 7 + 1) for n in range(total)])

    seen: list[float] = []
    a, b = bound(), bound()
    channel_a, channel_b = a("process", 50), b("process", 50)
    handles = [receivers(channel_a), receivers(channel_b)]

    async def work(receiver, slow: bool) -> None:
        async for delivery in receiver:
            seen.append(delivery.message.received)
            if slow:
                await anyio.sleep(0.005)
            delivery.ack()

    async with anyio.create_task_group() as tg:
        await _serve(tg, a, channel_a)
        tg.start_soon(work, handles[0], True)
        await anyio.sleep(0.5)
        await tg.start(channel_b.run)  # joins mid-stream: a rebalance
        await channel_b.close_originals()
        tg.start_soon(work, handles[1], False)
        with anyio.fail_after(GUARD):
            while len(set(seen)) < total:
                await anyio.sleep(0.05)
        channel_a.finish()
        channel_b.finish()
        with anyio.fail_after(GUARD):
            while channel_a.statistics().in_flight or channel_b.statistics().in_flight:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert set(seen) == {float(n) for n in range(total)}  # duplicates allowed (rebalance), losses not


async def test_a_producer_that_cannot_deliver_fails_confirm_then_stops_its_process():
    services.require_module("confluent_kafka")
    from minisentry.config import Config
    from minisentry.plugins.kafka_channels import KafkaChannels

    channels = KafkaChannels().bind(Config(kafka=KafkaConfig(bootstrap_servers="127.0.0.1:1", delivery_timeout=1.0)),
                                    None)
    sender = channels("ingest", 10).sender()
    with pytest.raises(BaseException) as caught:
        with anyio.fail_after(GUARD):
            async with anyio.create_task_group() as tg:
                await tg.start(channels.run)
                await sender.send(_event(1))
                with pytest.raises(BackendError, match="delivery to test|not delivered|failed"):
                    await sender.confirm()  # the relay answers this request 429
                with pytest.raises(BackendError):
                    sender.send_nowait(_event(2))  # a producer that lost a message takes no more
                await anyio.sleep_forever()  # the producer's task ends the task group
    errors = caught.value.exceptions if isinstance(caught.value, BaseExceptionGroup) else [caught.value]
    assert any(isinstance(e, BackendError) and "kafka producer failed, stopping" in str(e) for e in errors), errors
