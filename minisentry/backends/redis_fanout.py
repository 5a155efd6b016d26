""":class:`~minisentry.fanout.Fanout` over Redis pub/sub: a publish wakes watchers in every process.

Each process that subscribes runs one listener thread on one pub/sub connection, pattern-subscribed
to ``{prefix}:fanout:*``; it wakes this process's subscriptions of the topic it hears. Pub/sub does
not queue for absent listeners, so after a reconnect every subscription is woken once (a publish may
have been missed, and a spurious wake-up only costs one extra read of the store).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

from ..fanout import Subscribers, Subscription, check_topic
from .redis_client import check_prefix, make_client, translated

__all__ = ["RedisFanout", "topic_of"]

log = logging.getLogger("minisentry.fanout")


def topic_of(channel: Any, prefix: str) -> str | None:
    """Return the topic of pub/sub channel ``{prefix}:fanout:{topic}``, or None if it is not one. Never raises."""
    if isinstance(channel, bytes):
        channel = channel.decode("utf-8", "replace")
    if not isinstance(channel, str):
        return None
    head = f"{prefix}:fanout:"
    if not channel.startswith(head):
        return None
    try:
        return check_topic(channel[len(head):])
    except ValueError:
        return None


class RedisFanout:
    """Fan-out through Redis pub/sub under ``prefix``; at most ``max_subscriptions`` per process.

    ``publish`` blocks one round trip and raises BackendError. The first ``subscribe`` connects the
    listener (blocks; raises BackendError naming the URL) and starts its daemon thread; later ones
    never block. ``close`` stops the thread within about ``poll`` seconds. A lost connection is
    retried with backoff up to ``reconnect_max`` seconds, logged once per outage.
    """

    name = "redis"

    def __init__(self, client_or_url: Any, *, prefix: str = "minisentry", socket_timeout: float = 5.0,
                 max_subscriptions: int = 64, poll: float = 0.5, reconnect_max: float = 5.0) -> None:
        self.prefix = check_prefix(prefix)
        self.subscribers = Subscribers(max_subscriptions)
        self.client, self.label = make_client(client_or_url, socket_timeout=socket_timeout)
        self.poll = poll
        self.reconnect_max = reconnect_max
        self.reconnects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: Any = None

    def publish(self, topic: str) -> None:
        """See Fanout.publish. Raises ValueError for a malformed topic."""
        channel = f"{self.prefix}:fanout:{check_topic(topic)}"
        with translated(self.label, "fan-out publish"):
            self.client.publish(channel, b"1")

    def subscribe(self, topic: str) -> Subscription:
        """See Fanout.subscribe. Raises BackendFull at ``max_subscriptions``."""
        subscription = self.subscribers.add(topic)
        try:
            self._ensure_listener()
        except BaseException:
            subscription.close()
            raise
        return subscription

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._pubsub = self._connect()
            self._thread = threading.Thread(target=self._listen, name=f"minisentry-fanout-{self.prefix}",
                                            daemon=True)
            self._thread.start()

    def _connect(self) -> Any:
        """Open a pub/sub connection and wait until Redis confirms the subscription (so no publish
        made after this returns can be missed)."""
        pubsub = self.client.pubsub()
        try:
            with translated(self.label, "fan-out subscribe"):
                pubsub.psubscribe(f"{self.prefix}:fanout:*")
                while True:
                    message = pubsub.get_message(timeout=self.poll)
                    if message is not None and message["type"] == "psubscribe":
                        return pubsub
                    if self._stop.is_set():
                        return pubsub
        except BaseException:
            pubsub.close()
            raise

    def _listen(self) -> None:
        delay = 0.1
        pubsub = self._pubsub
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._pubsub = self._connect()
                    self.reconnects += 1
                    log.info("fan-out listener reconnected to Redis at %s", self.label)
                    self.subscribers.notify_all()
                    delay = 0.1
                message = pubsub.get_message(timeout=self.poll)
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                # AttributeError/ValueError: redis-py's pub/sub can raise them on a connection closed
                # under it; all mean "reconnect".
                if delay == 0.1:
                    log.error("fan-out listener lost Redis at %s, retrying: %s", self.label, exc)
                if pubsub is not None:
                    pubsub.close()
                pubsub = self._pubsub = None
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            if message is not None and message["type"] == "pmessage":
                topic = topic_of(message["channel"], self.prefix)
                if topic is not None:
                    self.subscribers.notify(topic)
        if pubsub is not None:
            pubsub.close()

    def close(self) -> None:
        """Stop the listener thread and release the connections. Idempotent; raises nothing."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.poll + 5)
        self.client.close()
