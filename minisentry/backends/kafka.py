"""Channels on Apache Kafka: a topic per stage edge, a consumer group per stage, keyed by project.

Each process runs one consumer per channel it receives from (its stage workers share it) and one
producer for all channels (kafka_producer.py). The guarantees:

* **at-least-once, in order**: a delivery's offset is committed only when it and every earlier
  offset of its partition were acknowledged (commits.py), and only after the producer flushed, so
  whatever the work sent downstream is on the broker before its input is marked done. Writers
  downstream are idempotent, so redeliveries (after a crash or a rebalance) store nothing twice.
* **bounded**: at most ``capacity`` deliveries are buffered or in flight in this process; at the
  limit the consumer pauses its partitions (fetching stops, the group membership stays alive).
* **large payloads** (``kafka.payload_threshold``) go to the payload store and travel as a key in
  a message header; the key is deleted once the offset that carried it is committed.
* **dead letters**: a record that can never be decoded, or whose payload expired from the payload
  store, goes to ``<topic>.dlq`` (bounded by size and retention) with the reason in a header, and is
  acknowledged; it does not block its partition.

End of stream: Kafka outlives the process, so a receiver ends when the pipeline calls
:meth:`KafkaChannel.finish` (shutdown) and the local buffer is drained; what is left in the topic
is processed by the next consumer of the group.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..channels import ChannelStats, Delivery, ReceiverBase, SenderBase
from ..codec import decode_message, encode_message
from ..commits import CommitTracker
from ..config import KafkaConfig
from ..errors import BackendError, CodecError, PipelineError
from .kafka_producer import KafkaProducer, client_settings, import_kafka

__all__ = ["KafkaChannel", "KafkaSender", "KafkaReceiver", "PAYLOAD_HEADER"]

log = logging.getLogger("minisentry.kafka")

#: Header naming the payload-store key of a message that travels by reference.
PAYLOAD_HEADER = "minisentry-payload"
_FETCH_MAX = 500
#: Seconds after subscribing during which "unknown topic" is taken as metadata still catching up.
_TOPIC_GRACE = 30.0
_POLL = 0.1
# Errors a commit may meet during a rebalance: the next owner re-reads, nothing is lost.
_REBALANCE_CODES = ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_NO_OFFSET")


def _key_of(message: Any) -> bytes:
    return str(getattr(message, "project_id", 0)).encode()


class KafkaChannel:
    """One pipeline edge on a Kafka topic. Build through the ``kafka`` channel backend."""

    def __init__(self, name: str, capacity: int, config: KafkaConfig, producer: KafkaProducer,
                 payloads: Any = None) -> None:
        self.name = name
        self.capacity = capacity
        self.config = config
        self.topic = f"{config.topic_prefix}.{name}"
        self.dead_letter_topic = f"{self.topic}.dlq"
        self.group = f"{config.group_prefix}.{name}"
        self.producer = producer
        self.payloads = payloads
        # Created with the first receiver: a channel this process only sends to needs no buffer.
        self._buffer_send: Any = None
        self._buffer_receive: Any = None
        self._receivers_wanted = False
        self._finishing = False
        self._trackers: dict[int, CommitTracker] = {}
        self._generation: dict[int, int] = {}
        self._last_committed: dict[int, int] = {}
        self._refs: dict[int, list[tuple[int, str]]] = {}
        self._rebalances: list[tuple[str, list[int]]] = []
        self._consumer: Any = None
        self._topic_grace = 0.0
        self.sent = 0
        self.received = 0
        self.acked = 0
        self.in_flight = 0
        self.dead_lettered = 0
        self.peak = 0
        self.commits = 0

    # -- handles --------------------------------------------------------------------------------

    def sender(self) -> "KafkaSender":
        """Return a sender handle; messages go to this channel's topic, keyed by project."""
        return KafkaSender(self)

    def receiver(self) -> "KafkaReceiver":
        """Return a receiver handle; the first one makes this process join the stage's consumer group."""
        if self._buffer_send is None:
            self._buffer_send, self._buffer_receive = anyio.create_memory_object_stream[Delivery](self.capacity)
        self._receivers_wanted = True
        return KafkaReceiver(self, self._buffer_receive.clone())

    async def close_originals(self) -> None:
        """Close the channel's own buffer handle so receiver clones alone hold it."""
        if self._buffer_receive is not None:
            await self._buffer_receive.aclose()

    def finish(self) -> None:
        """Stop fetching: receivers end once what is buffered here is handed out (shutdown)."""
        self._finishing = True

    def statistics(self) -> ChannelStats:
        """Depth and counters of this process's view of the channel (not the topic's lag)."""
        depth = waiting = 0
        if self._buffer_send is not None:
            stats = self._buffer_send.statistics()
            depth, waiting = stats.current_buffer_used, stats.tasks_waiting_receive
        return ChannelStats(name=self.name, capacity=self.capacity, depth=depth,
                            peak_depth=self.peak, senders_waiting=0, receivers_waiting=waiting,
                            sent=self.received, acked=self.acked, in_flight=self.in_flight, oldest_age=0.0)

    # -- sending --------------------------------------------------------------------------------

    async def _record(self, message: Any) -> tuple[bytes, list[tuple[str, bytes]] | None]:
        try:
            record = encode_message(message)
        except CodecError as exc:
            raise BackendError(f"{self.name}: {exc}") from exc
        if self.payloads is None or len(record) <= self.config.payload_threshold:
            return record, None
        key = f"{self.topic}/{uuid.uuid4().hex}"
        await anyio.to_thread.run_sync(self.payloads.put, key, record, self.config.payload_ttl)
        return b"", [(PAYLOAD_HEADER, key.encode())]

    async def _send(self, message: Any) -> None:
        value, headers = await self._record(message)
        await self.producer.produce_waiting(self.topic, _key_of(message), value, headers)
        self.sent += 1

    def _send_nowait(self, message: Any) -> None:
        try:
            record = encode_message(message)
        except CodecError as exc:
            raise BackendError(f"{self.name}: {exc}") from exc
        if self.payloads is not None and len(record) > self.config.payload_threshold:
            raise anyio.WouldBlock  # the payload store is a round trip: take the waiting path
        self.producer.produce(self.topic, _key_of(message), record)
        self.sent += 1

    # -- receiving: the consumer pump -------------------------------------------------------------

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume into the local buffer and commit in order, until :meth:`finish`.

        Does nothing for a channel this process only sends to. Raises BackendError when the
        consumer or a commit fails for good.
        """
        if not self._receivers_wanted:
            task_status.started()
            return
        kafka = import_kafka()
        settings = client_settings(self.config)
        settings.update({"group.id": self.group, "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": int(self.config.session_timeout * 1000),
                         "max.poll.interval.ms": 300_000, "fetch.max.bytes": 16 * 1024 * 1024})
        self._consumer = consumer = kafka.Consumer(settings)
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_revoke)
        self._topic_grace = time.monotonic() + _TOPIC_GRACE
        task_status.started()
        paused = False
        last_commit = time.monotonic()
        try:
            async with self._buffer_send:
                while not self._finishing:
                    room = self.capacity - self.in_flight
                    if room <= 0 and not paused:
                        consumer.pause(consumer.assignment())
                        paused = True
                    elif room > 0 and paused:
                        consumer.resume(consumer.assignment())
                        paused = False
                    messages = await anyio.to_thread.run_sync(consumer.consume, max(1, min(room, _FETCH_MAX)), _POLL)
                    self._apply_rebalances()
                    for message in messages:
                        await self._accept(message)
                    if time.monotonic() - last_commit >= self.config.commit_interval:
                        await self._commit()
                        last_commit = time.monotonic()
            # Finishing: receivers drain the buffer; wait for their acks, then commit what they did.
            with anyio.move_on_after(max(self.config.session_timeout, 5.0)):
                while self.in_flight:
                    await anyio.sleep(0.01)
            await self._commit()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(consumer.close)
            self._consumer = None

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # In the consume() thread: only record; the pump applies it on the event loop.
        self._rebalances.append(("assign", [p.partition for p in partitions]))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Commit what is done before the partitions move on, so the next owner re-reads less.
        # Runs in the consume() thread; trackers are only read here.
        numbers = [p.partition for p in partitions]
        kafka = import_kafka()
        offsets = []
        for number in numbers:
            tracker = self._trackers.get(number)
            if tracker is not None and tracker.committed is not None \
                    and tracker.committed + 1 > self._last_committed.get(number, -1):
                offsets.append(kafka.TopicPartition(self.topic, number, tracker.committed + 1))
        if offsets and self.producer.flush_blocking(self.config.delivery_timeout) == 0 and self.producer.failure is None:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except kafka.KafkaException as exc:
                log.warning("%s: commit on revoke failed (the next owner re-reads): %s", self.name, exc)
        self._rebalances.append(("revoke", numbers))

    def _apply_rebalances(self) -> None:
        for kind, numbers in self._rebalances:
            for number in numbers:
                # A new generation: acks of deliveries from before the change no longer commit.
                self._generation[number] = self._generation.get(number, 0) + 1
                self._trackers.pop(number, None)
                self._last_committed.pop(number, None)
                self._refs.pop(number, None)
                if kind == "assign":
                    self._trackers[number] = CommitTracker(self.capacity + _FETCH_MAX)
            log.info("%s: partitions %s %s", self.name, numbers, "assigned" if kind == "assign" else "revoked")
        self._rebalances.clear()

    async def _accept(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            kafka_error = import_kafka().KafkaError
            if error.code() == kafka_error._PARTITION_EOF:
                return
            if error.code() == kafka_error.UNKNOWN_TOPIC_OR_PART and time.monotonic() < self._topic_grace:
                return  # a topic another process just created: metadata catches up within seconds
            raise BackendError(f"{self.name}: kafka consumer error: {error}")
        number, offset = message.partition(), message.offset()
        tracker = self._trackers.get(number)
        if tracker is None:
            return  # from a partition revoked meanwhile: its next owner reads it
        tracker.track(offset)
        generation = self._generation[number]
        self.in_flight += 1
        self.received += 1

        acked = False

        def ack() -> None:
            nonlocal acked
            if acked:
                raise PipelineError(f"{self.name}: offset {offset} of partition {number} acknowledged twice")
            acked = True
            self.in_flight -= 1
            self.acked += 1
            if self._generation.get(number) == generation:
                self._trackers[number].done(offset)

        decoded = await self._decode(message, number, offset)
        if decoded is None:
            ack()
            return
        try:
            self._buffer_send.send_nowait(Delivery(decoded, ack))
        except anyio.BrokenResourceError:
            # Every receiver is gone (its stage ended): stop; the group re-reads what is left.
            ack()
            self._finishing = True
            return
        depth = self._buffer_send.statistics().current_buffer_used
        if depth > self.peak:
            self.peak = depth

    async def _decode(self, message: Any, number: int, offset: int) -> Any:
        """Return the message, or None after dead-lettering it."""
        value = message.value() or b""
        ref = dict(message.headers() or ()).get(PAYLOAD_HEADER)
        if ref is not None:
            key = ref.decode(errors="replace")
            value = await anyio.to_thread.run_sync(self.payloads.get, key) if self.payloads is not None else None
            if value is None:
                await self._dead_letter(message, f"payload {key} is missing from the payload store")
                return None
            self._refs.setdefault(number, []).append((offset, key))
        try:
            return decode_message(value)
        except CodecError as exc:
            await self._dead_letter(message, str(exc))
            return None

    async def _dead_letter(self, message: Any, reason: str) -> None:
        log.error("%s: offset %d of partition %d goes to %s: %s", self.name, message.offset(), message.partition(),
                  self.dead_letter_topic, reason)
        headers = list(message.headers() or ()) + [
            ("minisentry-reason", reason[:1000].encode()),
            ("minisentry-source", f"{self.topic}/{message.partition()}/{message.offset()}".encode())]
        await self.producer.produce_waiting(self.dead_letter_topic, message.key() or b"", message.value() or b"",
                                            headers)
        self.dead_lettered += 1

    async def _commit(self) -> None:
        """Commit each partition's done prefix, after the producer flushed what that work sent."""
        kafka = import_kafka()
        offsets = {}
        for number, tracker in self._trackers.items():
            if tracker.committed is not None and tracker.committed + 1 > self._last_committed.get(number, -1):
                offsets[number] = tracker.committed + 1
        if not offsets:
            return
        await self.producer.flush()
        generations = dict(self._generation)
        partitions = [kafka.TopicPartition(self.topic, number, offset) for number, offset in offsets.items()]
        try:
            await anyio.to_thread.run_sync(lambda: self._consumer.commit(offsets=partitions, asynchronous=False))
        except kafka.KafkaException as exc:
            code = exc.args[0].name() if exc.args else ""
            if code in _REBALANCE_CODES:
                log.warning("%s: commit skipped during a rebalance (the next owner re-reads): %s", self.name, exc)
                return
            raise BackendError(f"{self.name}: kafka commit failed: {exc}") from exc
        self.commits += 1
        done_refs: list[str] = []
        for number, offset in offsets.items():
            if self._generation.get(number) != generations.get(number):
                continue
            self._last_committed[number] = offset
            refs = self._refs.get(number)
            if refs:
                done_refs.extend(key for ref_offset, key in refs if ref_offset < offset)
                self._refs[number] = [(o, k) for o, k in refs if o >= offset]
        if done_refs and self.payloads is not None:
            await anyio.to_thread.run_sync(self._delete_payloads, done_refs)

    def _delete_payloads(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.payloads.delete(key)
            except BackendError as exc:  # the TTL removes it later
                log.warning("%s: cannot delete payload %s: %s", self.name, key, exc)


class KafkaSender(SenderBase):
    """A producer's handle on a :class:`KafkaChannel`."""

    __slots__ = ("_channel", "_closed")

    def __init__(self, channel: KafkaChannel) -> None:
        self._channel = channel
        self._closed = False

    async def send(self, message: Any) -> None:
        """Produce, waiting while the local producer queue is full. Raises BackendError on failure."""
        if self._closed:
            raise anyio.ClosedResourceError
        await self._channel._send(message)

    def send_nowait(self, message: Any) -> None:
        """Produce without waiting. Raises anyio.WouldBlock when the producer queue is full."""
        if self._closed:
            raise anyio.ClosedResourceError
        self._channel._send_nowait(message)

    async def confirm(self) -> None:
        """Wait until everything sent so far is on the broker. Raises BackendError if it is not."""
        await self._channel.producer.confirm()

    async def aclose(self) -> None:
        """Close this handle (the topic lives on)."""
        self._closed = True


class KafkaReceiver(ReceiverBase):
    """A consumer's handle on a :class:`KafkaChannel`: deliveries from this process's consumer."""

    __slots__ = ("_channel", "_stream")

    def __init__(self, channel: KafkaChannel, stream: MemoryObjectReceiveStream[Delivery]) -> None:
        self._channel = channel
        self._stream = stream

    async def receive(self) -> Delivery:
        """Wait for the next delivery. Raises anyio.EndOfStream once the channel finished."""
        return await self._stream.receive()

    def receive_nowait(self) -> Delivery:
        """Take a buffered delivery. Raises anyio.WouldBlock or anyio.EndOfStream."""
        return self._stream.receive_nowait()

    async def aclose(self) -> None:
        """Close this handle."""
        await self._stream.aclose()

