"""Registers the Kafka channel backend as ``kafka`` (needs the ``kafka`` extra: confluent-kafka)."""

from __future__ import annotations

from typing import Any

import anyio

from ..config import Config
from ..hookspecs import hookimpl

#: The pipeline's edges; each gets a topic and a dead-letter topic.
EDGES = ("ingest", "symbolicate", "symbolicate_slow", "process", "store")


class BoundKafkaChannels:
    """Kafka channels for one pipeline: one shared producer, a channel per edge. Build via :class:`KafkaChannels`."""

    def __init__(self, config: Config, payloads: Any) -> None:
        from ..backends.kafka_producer import KafkaProducer

        self.config = config.kafka
        self.payloads = payloads
        self.producer = KafkaProducer(config.kafka)

    def prepare(self) -> None:
        """Create the topics that are missing. Blocks; raises BackendError if Kafka is unreachable."""
        from ..backends.kafka_producer import ensure_topics

        kafka = self.config
        dead_letter = {"retention.bytes": str(kafka.dead_letter_max_bytes),
                       "retention.ms": str(int(kafka.dead_letter_retention * 1000))}
        topics: dict[str, dict[str, str]] = {}
        for edge in EDGES:
            topics[f"{kafka.topic_prefix}.{edge}"] = {}
            topics[f"{kafka.topic_prefix}.{edge}.dlq"] = dead_letter
        ensure_topics(kafka, topics)

    def __call__(self, name: str, capacity: int) -> Any:
        from ..backends.kafka import KafkaChannel

        return KafkaChannel(name, capacity, self.config, self.producer, self.payloads)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the shared producer (delivery reports, confirmations) until cancelled."""
        await self.producer.run(task_status=task_status)

    def close(self) -> None:
        """Flush what the producer still holds (blocks up to the delivery timeout)."""
        self.producer.flush_blocking(self.config.delivery_timeout)


class KafkaChannels:
    """Channel backend ``kafka``: ``bind(config, payloads)`` returns the channels of one pipeline."""

    name = "kafka"

    def bind(self, config: Config, payloads: Any = None) -> BoundKafkaChannels:
        """Build the producer (raises ConfigError without confluent-kafka or with bad settings)."""
        return BoundKafkaChannels(config, payloads)


@hookimpl
def minisentry_register_channel_backends():
    return [KafkaChannels()]
