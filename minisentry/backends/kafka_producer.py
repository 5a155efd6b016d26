"""The Kafka side every channel of one process shares: one producer, topic setup, group commit.

Produced messages are durable once the broker acknowledged them. Two things wait for that:

* a consumer committing its offsets (the work those offsets stand for produced messages downstream:
  they must be on the broker first, or a crash would lose them) — :meth:`KafkaProducer.flush`;
* the relay answering 200 — :meth:`KafkaProducer.confirm`, which batches every waiter that arrived
  meanwhile into one flush (group commit), so a thousand concurrent requests cost a handful of
  thread hops, not a thousand.

A delivery that fails for good (``delivery_timeout`` passed) poisons the producer: every later
send, confirm and commit raises BackendError, the stage crashes, the process exits, and the
uncommitted input is redelivered to whoever runs next. Nothing is acknowledged that did not land.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from ..config import KafkaConfig
from ..errors import BackendError, ConfigError

__all__ = ["KafkaProducer", "import_kafka", "client_settings", "ensure_topics"]

log = logging.getLogger("minisentry.kafka")

#: How long one blocking client call may take before the caller gets control back (seconds).
_CALL_TIMEOUT = 10.0


def import_kafka() -> Any:
    """Return the confluent_kafka module. Raises ConfigError when the extra is not installed."""
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ConfigError("channels.backend = 'kafka' needs confluent-kafka: pip install 'minisentry[kafka]'") from exc
    return confluent_kafka


def client_settings(config: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings shared by producers, consumers and the admin client."""
    settings: dict[str, Any] = {"bootstrap.servers": config.bootstrap_servers, "client.id": "minisentry"}
    settings.update(config.options)
    return settings


def ensure_topics(config: KafkaConfig, topics: dict[str, dict[str, str]]) -> None:
    """Create the topics that do not exist yet, with ``partitions`` each. Blocks (admin round trips).

    ``topics`` maps a topic name to its topic-level settings. Raises BackendError when the broker
    cannot be reached or refuses to create one.
    """
    kafka = import_kafka()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_settings(config))
    try:
        existing = set(admin.list_topics(timeout=_CALL_TIMEOUT).topics)
    except kafka.KafkaException as exc:
        raise BackendError(f"kafka at {config.bootstrap_servers} is unreachable: {exc}") from exc
    missing = [NewTopic(name, num_partitions=config.partitions, replication_factor=config.replication_factor,
                        config=settings) for name, settings in topics.items() if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(missing, operation_timeout=_CALL_TIMEOUT)
    for name, future in futures.items():
        try:
            future.result(timeout=_CALL_TIMEOUT * 2)
        except kafka.KafkaException as exc:
            # Another process created it between our listing and our request: that is fine.
            if exc.args and exc.args[0].code() == kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BackendError(f"cannot create kafka topic {name}: {exc}") from exc
    _wait_until_visible(admin, [t.topic for t in missing], config)
    log.info("created kafka topics %s", ", ".join(t.topic for t in missing))


def _wait_until_visible(admin: Any, names: list[str], config: KafkaConfig, timeout: float = 30.0) -> None:
    # A created topic reaches every broker's metadata a moment later; a consumer subscribing before
    # that is told the topic does not exist.
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=_CALL_TIMEOUT).topics
        pending = [name for name in names if name not in topics or topics[name].error is not None
                   or any(p.leader < 0 for p in topics[name].partitions.values())]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise BackendError(f"kafka topics {', '.join(pending)} not ready after {timeout:.0f}s")
        time.sleep(0.1)


class _Waiter:
    __slots__ = ("event", "error")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.error: BackendError | None = None


class KafkaProducer:
    """One confluent-kafka producer for every channel of this process, with group commit.

    ``produce`` never blocks; it raises anyio.WouldBlock while ``producer_queue`` messages wait
    for the broker. Run :meth:`run` in the pipeline's task group: it serves delivery reports and
    the :meth:`confirm` waiters.
    """

    def __init__(self, config: KafkaConfig) -> None:
        kafka = import_kafka()
        self._kafka = kafka
        settings = client_settings(config)
        settings.update({
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": int(config.delivery_timeout * 1000),
            "queue.buffering.max.messages": config.producer_queue,
            "compression.type": "lz4",
        })
        try:
            self._producer = kafka.Producer(settings)
        except kafka.KafkaException as exc:
            raise ConfigError(f"kafka producer settings are invalid: {exc}") from exc
        self.config = config
        self.failure: str | None = None
        self.produced = 0
        self.delivered = 0
        self._waiters: list[_Waiter] = []
        self._wake = anyio.Event()

    def _on_delivery(self, err: Any, msg: Any) -> None:
        # Runs in whichever thread serves the producer (poll/flush): only plain assignments here.
        if err is not None:
            self.failure = f"delivery to {msg.topic()} failed: {err}"
            log.error("kafka %s", self.failure)
        else:
            self.delivered += 1

    def check(self) -> None:
        """Raise BackendError if a message could not be delivered (this producer is then unusable)."""
        if self.failure is not None:
            raise BackendError(f"kafka producer failed: {self.failure}")

    def produce(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Hand one message to the producer. Never blocks.

        Raises anyio.WouldBlock when the local queue is full, BackendError after a failed delivery
        or when the broker refuses the message outright (too large, unknown topic).
        """
        self.check()
        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
        except BufferError:
            self._producer.poll(0)
            raise anyio.WouldBlock from None
        except self._kafka.KafkaException as exc:
            raise BackendError(f"kafka refused a message for {topic}: {exc}") from exc
        self.produced += 1
        self._producer.poll(0)

    async def produce_waiting(self, topic: str, key: bytes, value: bytes,
                              headers: list[tuple[str, bytes]] | None = None) -> None:
        """Like :meth:`produce`, but waits while the local queue is full (backpressure)."""
        delay = 0.001
        while True:
            try:
                return self.produce(topic, key, value, headers)
            except anyio.WouldBlock:
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.05)

    async def flush(self) -> None:
        """Wait until every message produced so far reached the broker. Blocks a worker thread.

        Raises BackendError if one failed or the broker stays away for ``delivery_timeout``.
        """
        remaining = await anyio.to_thread.run_sync(self._producer.flush, self.config.delivery_timeout + 5)
        self.check()
        if remaining:
            raise BackendError(f"kafka producer: {remaining} messages not delivered after "
                               f"{self.config.delivery_timeout:.0f}s")

    async def confirm(self) -> None:
        """Wait until everything produced before this call is on the broker (group commit).

        Raises BackendError like :meth:`flush`.
        """
        self.check()
        waiter = _Waiter()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve confirm waiters and delivery reports until cancelled.

        Raises BackendError once a delivery failed for good: a producer that lost a message cannot
        be trusted again, so the process stops (its supervisor restarts it) instead of refusing
        every request from then on. What was answered 200 was confirmed before, so nothing is lost.
        """
        task_status.started()
        while True:
            if self.failure is not None and not self._waiters:
                raise BackendError(f"kafka producer failed, stopping: {self.failure}")
            with anyio.move_on_after(0.05):
                await self._wake.wait()
            self._wake = anyio.Event()
            waiters, self._waiters = self._waiters, []
            if not waiters:
                self._producer.poll(0)
                continue
            error = None
            try:
                await self.flush()
            except BackendError as exc:
                error = exc
            for waiter in waiters:
                waiter.error = error
                waiter.event.set()

    def flush_blocking(self, timeout: float) -> int:
        """Flush what is queued, blocking this thread up to ``timeout``; return how many are left."""
        return self._producer.flush(timeout)
