"""A bounded FIFO for small records waiting for the store stage (check-ins, log records)."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["BoundedQueue"]

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """Records in arrival order until the store takes them. ``put`` refuses past ``limit``. Never blocks."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Queue one record; False (nothing queued) when the queue is full."""
        if len(self._items) >= self.limit:
            return False
        self._items.append(item)
        return True

    def put_all(self, items: list[T]) -> bool:
        """Queue all of ``items`` or none of them (False when they do not all fit)."""
        if len(self._items) + len(items) > self.limit:
            return False
        self._items.extend(items)
        return True

    def take(self) -> list[T]:
        """Remove and return everything queued, oldest first."""
        items, self._items = list(self._items), deque()
        return items
