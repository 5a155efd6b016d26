"""Operators' lane pins (``minisentry lanes force``), followed from the store while the server runs."""

from __future__ import annotations

import logging
from typing import Any, Callable

import anyio

from .errors import MinisentryError
from .lanes import LaneSelector

__all__ = ["follow_lane_overrides"]

log = logging.getLogger("minisentry")


async def follow_lane_overrides(selector: LaneSelector, load: Callable[[], dict[int, str]],
                                pinned_by_config: dict[int, str], *, interval: float,
                                task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """Poll ``load`` (blocking; run in a worker thread) and pin or unpin projects as the pins change.

    A pin removed from the store falls back to the config's ``lanes.force_*`` (or to no pin). A
    failed read keeps the current pins. Reports started after the first read; runs until cancelled.
    """
    applied: dict[int, str] = {}
    started = False
    while True:
        try:
            overrides = await anyio.to_thread.run_sync(load)
        except MinisentryError as exc:
            log.error("cannot read lane overrides, keeping the current ones: %s", exc)
            overrides = applied
        for project_id, lane in overrides.items():
            if applied.get(project_id) != lane:
                selector.force(project_id, lane)
        for project_id in set(applied) - set(overrides):
            selector.force(project_id, pinned_by_config.get(project_id))
        applied = dict(overrides)
        if not started:
            started = True
            task_status.started()
        await anyio.sleep(interval)
