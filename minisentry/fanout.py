"""Change fan-out: "something changed in topic T" pushed to every watcher, in every process.

The store stays the source of truth; watchers (``KillSwitches.watch``, ``ProjectKeys.watch``) still
poll it, but a :class:`Subscription` wakes them as soon as someone publishes the topic, so a change
made with the CLI is applied within milliseconds instead of a poll interval. A lost wake-up only
costs latency (the next poll still sees the change), which is why publishing may fail softly.

:class:`MemoryFanout` reaches the watchers of this process only; ``backends/redis_fanout.py`` uses
Redis pub/sub to reach every process.
"""

from __future__ import annotations

import re
import threading
from typing import Callable, Protocol, runtime_checkable

import anyio
import sniffio

from .errors import BackendFull

__all__ = ["Fanout", "Subscription", "Subscribers", "MemoryFanout", "check_topic", "pause",
           "TOPIC_KILLSWITCHES", "TOPIC_PROJECTS"]

#: Published after kill-switch values change in the store.
TOPIC_KILLSWITCHES = "killswitches"
#: Published after a project or key changes in the store.
TOPIC_PROJECTS = "projects"

_TOPIC_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is 1-64 of ``a-z 0-9 _ . -`` (starting alphanumeric); else ValueError."""
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        raise ValueError(f"fan-out topic must be 1-64 of a-z, 0-9, '_', '.', '-', got {topic!r}")
    return topic


def _loop_scheduler() -> Callable[[Callable[[], None]], None]:
    """Return a thread-safe, non-blocking "run this soon in the current event loop" function."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class Subscription:
    """Wake-ups of one topic for one watcher (one waiting task at a time).

    Publishes are remembered as a single flag until the next :meth:`wait` consumes them, so one
    that arrives while the watcher is busy reading the store is not lost, and a burst of publishes
    costs one wake-up: the state is one bool, bounded whatever the publish rate.
    """

    def __init__(self, topic: str, release: Callable[["Subscription"], None]) -> None:
        self.topic = topic
        self._release = release
        self._lock = threading.Lock()
        self._pending = False
        self._waiter: tuple[Callable[[Callable[[], None]], None], anyio.Event] | None = None
        self.closed = False

    def notify(self) -> None:
        """Record a publish and wake the waiting task. Thread-safe, never blocks, raises nothing."""
        with self._lock:
            self._pending = True
            waiter = self._waiter
        if waiter is not None:
            schedule, event = waiter
            try:
                schedule(event.set)
            except RuntimeError:
                pass  # that event loop has finished: nobody is left to wake

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a publish; True if one came since the last wait.

        Returns at once when a publish is already pending. Cancellable. Raises RuntimeError if
        another task is already waiting on this subscription.
        """
        with self._lock:
            if self._pending:
                self._pending = False
                return True
            if self._waiter is not None:
                raise RuntimeError(f"another task already waits on the {self.topic!r} subscription")
            event = anyio.Event()
            self._waiter = (_loop_scheduler(), event)
        try:
            with anyio.move_on_after(timeout):
                await event.wait()
        finally:
            with self._lock:
                self._waiter = None
                pending, self._pending = self._pending, False
        return pending

    def close(self) -> None:
        """Stop receiving wake-ups and free the slot. Idempotent; raises nothing."""
        if not self.closed:
            self.closed = True
            self._release(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def pause(wake: Subscription | None, interval: float) -> None:
    """Sleep ``interval`` seconds, or less when ``wake`` receives a publish. Cancellable."""
    if wake is None:
        await anyio.sleep(interval)
    else:
        await wake.wait(interval)


class Subscribers:
    """This process's subscriptions by topic, at most ``max_subscriptions``. Thread-safe."""

    def __init__(self, max_subscriptions: int) -> None:
        if isinstance(max_subscriptions, bool) or not isinstance(max_subscriptions, int) or max_subscriptions <= 0:
            raise ValueError(f"max_subscriptions must be a positive integer, got {max_subscriptions!r}")
        self.max_subscriptions = max_subscriptions
        self._lock = threading.Lock()
        self._by_topic: dict[str, set[Subscription]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic: str) -> Subscription:
        """Return a new subscription to ``topic``. Raises BackendFull at ``max_subscriptions``."""
        check_topic(topic)
        subscription = Subscription(topic, self._remove)
        with self._lock:
            if self._count >= self.max_subscriptions:
                raise BackendFull(f"fan-out has {self._count} subscriptions, the limit "
                                  f"(max_subscriptions = {self.max_subscriptions}); close unused ones")
            self._by_topic.setdefault(topic, set()).add(subscription)
            self._count += 1
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._by_topic.get(subscription.topic)
            if subscribers is not None and subscription in subscribers:
                subscribers.discard(subscription)
                self._count -= 1
                if not subscribers:
                    del self._by_topic[subscription.topic]

    def notify(self, topic: str) -> int:
        """Wake every subscription of ``topic``; return how many. Thread-safe, never blocks."""
        with self._lock:
            subscribers = list(self._by_topic.get(topic, ()))
        for subscription in subscribers:
            subscription.notify()
        return len(subscribers)

    def notify_all(self) -> None:
        """Wake every subscription (after a reconnect, publishes may have been missed)."""
        with self._lock:
            subscribers = [s for group in self._by_topic.values() for s in group]
        for subscription in subscribers:
            subscription.notify()


@runtime_checkable
class Fanout(Protocol):
    """Publish "topic changed" to every subscriber of the topic."""

    name: str

    def publish(self, topic: str) -> None:
        """Wake every subscriber of ``topic``. Blocks at most one round trip; raises BackendError."""
        ...

    def subscribe(self, topic: str) -> Subscription:
        """Return a subscription to ``topic``. May block (first one connects); raises BackendError."""
        ...

    def close(self) -> None:
        """Stop listening and release connections. Blocks briefly; raises nothing."""
        ...


class MemoryFanout:
    """Fan-out inside this process only (other processes keep polling). Never blocks."""

    name = "memory"

    def __init__(self, max_subscriptions: int = 64) -> None:
        self.subscribers = Subscribers(max_subscriptions)

    def publish(self, topic: str) -> None:
        """See Fanout.publish. Raises ValueError for a malformed topic."""
        self.subscribers.notify(check_topic(topic))

    def subscribe(self, topic: str) -> Subscription:
        """See Fanout.subscribe. Raises BackendFull at ``max_subscriptions``, ValueError for a bad topic."""
        return self.subscribers.add(topic)

    def close(self) -> None:
        """Nothing to release."""
