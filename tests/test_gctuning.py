"""The serving GC settings: applied by `minisentry serve` and its workers, never by an embedder's import."""

from __future__ import annotations

import subprocess
import sys

from minisentry.gctuning import SERVING_THRESHOLDS


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_minisentry_leaves_the_collector_alone():
    assert _run("import gc, minisentry, minisentry.stages.process; print(gc.get_threshold(), gc.get_freeze_count())") \
        == "(700, 10, 10) 0"


def test_serving_settings_freeze_startup_objects_and_raise_the_thresholds():
    threshold, frozen = _run("import gc, minisentry.gctuning as g; g.tune_for_serving(); "
                             "print(gc.get_threshold(), gc.get_freeze_count())").rsplit(" ", 1)
    assert threshold == str(SERVING_THRESHOLDS) and int(frozen) > 10_000
