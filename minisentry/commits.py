"""In-order commit of out-of-order work (the arroyo rule).

Workers may finish messages in any order, but a channel may only commit (acknowledge to its
source) a position once every earlier message is done; otherwise a crash after committing message 7
while message 5 is still in flight would lose message 5. :class:`CommitTracker` keeps the pending
positions and reports how far the contiguous done prefix reaches.
"""

from __future__ import annotations

from collections import deque

from .errors import PipelineError

__all__ = ["CommitTracker"]


class CommitTracker:
    """Track positions handed out in increasing order and release them in order. Never blocks.

    ``track(pos)`` must be called with strictly increasing positions; ``done(pos)`` may come in any
    order and returns the new highest committable position, or ``None`` when the head is still
    pending; it raises PipelineError for a position that is not pending (never tracked, or already
    done). At most ``limit`` positions may be pending; ``track`` raises PipelineError past it,
    because the caller should never hand out more work than its bounded channel allows.
    """

    __slots__ = ("_pending", "_waiting", "_done", "_limit", "_last_tracked", "committed")

    def __init__(self, limit: int) -> None:
        self._pending: deque[int] = deque()
        self._waiting: set[int] = set()  # tracked and not yet done
        self._done: set[int] = set()
        self._limit = limit
        self._last_tracked: int | None = None
        #: The highest position whose every predecessor is done, or None before the first.
        self.committed: int | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, position: int) -> None:
        """Register a position that has been handed to a worker."""
        if self._last_tracked is not None and position <= self._last_tracked:
            raise PipelineError(f"positions must increase: {position} after {self._last_tracked}")
        if len(self._pending) >= self._limit:
            raise PipelineError(f"more than {self._limit} positions pending commit")
        self._pending.append(position)
        self._waiting.add(position)
        self._last_tracked = position

    def done(self, position: int) -> int | None:
        """Mark ``position`` finished; return the new committable position if the head advanced."""
        if position not in self._waiting:
            raise PipelineError(f"position {position} is not pending (double ack?)")
        self._waiting.remove(position)
        self._done.add(position)
        advanced = None
        while self._pending and self._pending[0] in self._done:
            head = self._pending.popleft()
            self._done.discard(head)
            advanced = head
        if advanced is not None:
            self.committed = advanced
        return advanced
