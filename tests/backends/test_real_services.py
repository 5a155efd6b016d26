"""Smoke tests against the real Redis and Apache Kafka started by ``scripts/services.sh start``.

They check the services (and the client libraries) behave as the backends rely on, independent of
minisentry's own code. Without the services they skip locally and fail in CI (see tests/services.py).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests import services

pytestmark = pytest.mark.services


# ---------------------------------------------------------------------------------------- Redis


@pytest.fixture
def redis_client():
    redis = services.require_module("redis")
    client = redis.Redis.from_url(services.redis_url(), socket_timeout=5)
    created: list[str] = []
    try:
        assert client.ping()
        yield client, created
    finally:
        if created:
            client.delete(*created)
        client.close()


def _key(created: list[str], name: str) -> str:
    key = f"minisentry-test:{uuid.uuid4().hex}:{name}"
    created.append(key)
    return key


def test_redis_set_get_with_ttl(redis_client):
    client, created = redis_client
    key = _key(created, "ttl")

    assert client.set(key, b"value", ex=30)
    assert client.get(key) == b"value"
    assert 0 < client.ttl(key) <= 30

    short = _key(created, "short")
    assert client.set(short, b"gone soon", px=200)
    assert client.get(short) == b"gone soon"
    deadline = time.monotonic() + 5
    while client.get(short) is not None:
        assert time.monotonic() < deadline, "key with a 200 ms TTL did not expire"
        time.sleep(0.05)
    assert client.exists(short) == 0

    nx = _key(created, "nx")
    assert client.set(nx, b"first", nx=True, ex=30)
    assert client.set(nx, b"second", nx=True, ex=30) is None
    assert client.get(nx) == b"first"


def test_redis_incr_is_atomic_across_threads(redis_client):
    client, created = redis_client
    key = _key(created, "counter")
    threads_n, per_thread = 8, 250
    seen: list[list[int]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                seen[i].append(client.incr(key))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    total = threads_n * per_thread
    assert int(client.get(key)) == total
    # Every INCR returned a distinct value: no two callers ever saw the same count.
    values = sorted(v for vs in seen for v in vs)
    assert values == list(range(1, total + 1))


# ---------------------------------------------------------------------------------------- Kafka


@pytest.fixture
def kafka():
    ck = services.require_module("confluent_kafka")
    admin_mod = services.require_module("confluent_kafka.admin")
    bootstrap = services.kafka_bootstrap()
    admin = admin_mod.AdminClient({"bootstrap.servers": bootstrap})
    topics: list[str] = []
    try:
        yield ck, admin_mod, admin, bootstrap, topics
    finally:
        if topics:
            for fut in admin.delete_topics(topics, operation_timeout=10).values():
                try:
                    fut.result(timeout=15)
                except Exception:  # best effort cleanup
                    pass


def _wait_for_partitions(admin, topic: str, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == count
            and all(p.leader >= 0 and p.error is None for p in t.partitions.values())
        ):
            return
        assert time.monotonic() < deadline, f"topic {topic} not ready: {t!r}"
        time.sleep(0.2)


def _consume(consumer, count: int, timeout: float = 60.0):
    """Poll until `count` messages arrived (or fail after `timeout` seconds)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"consumed {len(got)} of {count} messages"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def test_kafka_produce_consume_commit_and_resume(kafka):
    ck, admin_mod, admin, bootstrap, topics = kafka
    topic = f"minisentry-smoke-{uuid.uuid4().hex[:12]}"
    group = f"minisentry-smoke-group-{uuid.uuid4().hex[:12]}"
    topics.append(topic)

    # Create a topic with 2 partitions.
    futures = admin.create_topics([admin_mod.NewTopic(topic, num_partitions=2, replication_factor=1)])
    futures[topic].result(timeout=30)
    _wait_for_partitions(admin, topic, 2)

    # Produce 100 keyed messages and check every delivery report.
    total = 100
    delivered: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    delivery_errors = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(err)
        else:
            delivered[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(total):
        producer.produce(topic, key=f"key-{i % 10}".encode(), value=f"event-{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert not delivery_errors, delivery_errors
    assert len(delivered) == total
    partitions_used = {p for p, _ in delivered}
    assert partitions_used == {0, 1}, "10 distinct keys should land on both partitions"
    key_partition: dict[bytes, int] = {}
    for (p, _), (k, _) in delivered.items():
        assert key_partition.setdefault(k, p) == p, "one key must always map to one partition"

    def consumer():
        return ck.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )

    # First consumer: read half, commit exactly what was processed, leave the group.
    first = consumer()
    try:
        first.subscribe([topic])
        batch1 = _consume(first, total // 2)
        next_offsets: dict[int, int] = {}
        for m in batch1:
            p, o = m.partition(), m.offset()
            assert o >= next_offsets.get(p, 0), "offsets within a partition arrive in order"
            next_offsets[p] = o + 1
        commit = [ck.TopicPartition(topic, p, o) for p, o in sorted(next_offsets.items())]
        committed = first.commit(offsets=commit, asynchronous=False)
        assert all(tp.error is None for tp in committed), committed
    finally:
        first.close()

    # The group's committed offsets are what was committed.
    second = consumer()
    try:
        stored = second.committed([ck.TopicPartition(topic, p) for p in (0, 1)], timeout=15)
        for tp in stored:
            if tp.partition in next_offsets:
                assert tp.offset == next_offsets[tp.partition]
            else:
                assert tp.offset < 0  # nothing committed for it (OFFSET_INVALID)

        # Second consumer in the same group resumes right after the committed offsets.
        second.subscribe([topic])
        batch2 = _consume(second, total - len(batch1))
        for m in batch2:
            assert m.offset() >= next_offsets.get(m.partition(), 0), "re-read a committed message"
        # Nothing more arrives: exactly the other half was left.
        extra = second.poll(1.0)
        assert extra is None, f"unexpected extra message {extra.partition()}:{extra.offset()}"
        second.commit(asynchronous=False)
    finally:
        second.close()

    seen1 = {(m.partition(), m.offset()) for m in batch1}
    seen2 = {(m.partition(), m.offset()) for m in batch2}
    assert not seen1 & seen2, "a message was consumed twice"
    assert seen1 | seen2 == set(delivered), "every produced message was consumed exactly once"
    for m in batch1 + batch2:
        assert (m.key(), m.value()) == delivered[(m.partition(), m.offset())]
