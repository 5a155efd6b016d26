"""One pruning round of ``[retention]``: a few bounded batches, so the store is never locked for long."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from .config import RetentionConfig
from .errors import StorageError

__all__ = ["prune_round"]

log = logging.getLogger("minisentry.retention")


async def prune_round(store: Any, retention: RetentionConfig, *, now: float | None = None) -> int:
    """Delete what retention no longer keeps, at most ``max_batches`` transactions of ``batch`` rows.

    Runs the store's blocking ``prune`` in worker threads; returns the rows deleted. A store
    without ``prune`` (a plugin's) is left alone. Store errors are logged, not raised: the next
    round tries again.
    """
    if not hasattr(store, "prune") or (not retention.days and not retention.max_events_per_project):
        return 0
    older_than = (time.time() if now is None else now) - retention.days * 86400 if retention.days else None
    cap = retention.max_events_per_project or None
    total = 0
    for _ in range(retention.max_batches):
        try:
            deleted = await anyio.to_thread.run_sync(
                lambda: store.prune(older_than=older_than, max_events_per_project=cap, batch=retention.batch))
        except StorageError as exc:
            log.error("retention: pruning failed, trying again next round: %s", exc)
            break
        total += deleted
        if deleted == 0:
            break
    if total:
        log.info("retention: deleted %d events and transactions", total)
    return total
