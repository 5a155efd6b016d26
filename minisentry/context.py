"""What every stage may use besides its channels: config, outcome counting, the store, hooks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .outcomes import OutcomeAggregator

__all__ = ["StageContext"]


@dataclass(slots=True)
class StageContext:
    """Shared, long-lived services handed to each stage's ``run``.

    ``store`` is the event store (blocking methods: call them in a worker thread). ``hooks`` is the
    pipeline's pluggy hook relay. ``lanes`` is the slow-lane selector, ``killswitches`` the current kill-switch values, ``sessions`` the release-health counts and
    ``check_ins`` the cron check-ins and ``logs`` the log records waiting for the store. ``settings``
    is the per-project effective filters/scrubbing/quotas, ``plugin_items`` the plugins' item types (``project_settings.ProjectSettings``;
    None: the config file's sections apply to every project). ``stored`` counts events the store wrote (new rows only).
    """

    config: Config
    outcomes: OutcomeAggregator
    store: Any
    hooks: Any = None
    lanes: Any = None
    killswitches: Any = None
    sessions: Any = None
    check_ins: Any = None
    logs: Any = None
    settings: Any = None
    #: Plugin item types and endpoints (``plugin_items.PluginItems``; None: no plugin adds any).
    plugin_items: Any = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("minisentry"))
    stored: int = 0
    duplicates: int = 0
