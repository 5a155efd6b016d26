"""A snapshot of a running Pipeline for the web UI's status page (``/ui/status/``).

The same sources as ``/metrics`` (``Pipeline.statistics()``, the lane selector, the kill-switches)
as plain data, so the page needs no Pipeline at hand and tests can build one by hand. Never blocks:
everything read here lives in this process's memory.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from .killswitches import SWITCHES, describe

__all__ = ["pipeline_status", "STAGE_ROLES"]

#: The roles that run stages reading the channels (everything but the front door).
STAGE_ROLES = ("ingest", "symbolicate", "process", "store")


def pipeline_status(pipeline: Any) -> dict[str, Any]:
    """``{"roles", "stages", "ready", "reasons", "channels", "lanes", "killswitches", "upstream", "spool"}``.

    ``stages`` lists the stage roles this process runs; ``channels`` are ChannelStats as dicts;
    ``lanes`` the lane selector's snapshot with ``demoted_for`` (seconds of backoff left, or None);
    ``killswitches`` only the switches with conditions, each with its stage and its value described.
    Raises nothing for a pipeline that is starting or stopping (its parts may be None).
    """
    roles = sorted(getattr(pipeline, "roles", ()) or ())
    health = pipeline.health()
    lanes = []
    if getattr(pipeline, "lanes", None) is not None:
        now = time.monotonic()
        for row in pipeline.lanes.snapshot():
            until = row.get("demoted_until")
            lanes.append({**row, "demoted_for": max(until - now, 0.0) if until is not None else None})
    switches = []
    for name, switch in SWITCHES.items():
        conditions = pipeline.killswitches.conditions(name)
        if conditions:
            switches.append({"name": name, "stage": switch.stage, "action": switch.action,
                             "value": describe(conditions, switch.action)})
    forwarder = getattr(pipeline, "forwarder", None)
    spool = getattr(pipeline, "spool", None)
    return {
        "roles": roles,
        "stages": [role for role in STAGE_ROLES if role in roles],
        "ready": health.ready,
        "reasons": list(health.reasons),
        "channels": [asdict(stats) for stats in pipeline.statistics()],
        "lanes": lanes,
        "killswitches": switches,
        "upstream": None if forwarder is None else {"up": bool(forwarder.up), "forwarded": forwarder.forwarded},
        "spool": None if spool is None else {"messages": len(spool), "bytes": spool.size_bytes},
    }
