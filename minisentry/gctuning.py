"""Garbage-collector settings for the processes minisentry owns (``minisentry serve`` and its
process workers), not for programs that embed the pipeline.

Python's default thresholds run a young collection every 700 container allocations; an event
allocates hundreds of dicts and lists that reference counting frees anyway, so under load the
collector ran ~550 times per 20,000 events and took ~4 % of the serving process's CPU, mostly
re-walking objects that live as long as the process. :func:`tune_for_serving` moves everything
alive after startup out of the collector's sight (``gc.freeze``) and collects less often. With
these settings the same load took 22 collections and ~60 % less collector time (bench/README.md).
"""

from __future__ import annotations

import gc

__all__ = ["SERVING_THRESHOLDS", "tune_for_serving"]

#: Young-generation threshold and the two older ones' ratios while serving.
SERVING_THRESHOLDS = (10_000, 20, 20)


def tune_for_serving() -> None:
    """Freeze what is alive now (call it once startup is done) and raise the thresholds. Never raises."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
