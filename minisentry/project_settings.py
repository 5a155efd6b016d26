"""Per-project settings: ``[filters]``, ``[scrubbing]`` and ``[[quotas]]`` overrides kept in the store.

The config file's sections are every project's defaults. ``minisentry projects settings set``
stores a project's own section (validated by the very parsers that read the file:
:meth:`FilterSettings.from_mapping`, :meth:`ScrubbingSettings.from_mapping`,
:func:`quotas_from_config`), and a running server applies it within a second. How a stored
section combines with the file's:

- ``filters`` and ``scrubbing`` **merge over the file key by key**: a key the project sets replaces
  the file's value of that key (a list replaces the whole list), a key it leaves out keeps the
  file's value. So a project can add an ``error_messages`` glob and still get the file's
  ``browser_extensions`` choice.
- ``quotas`` are **added** to the file's quotas for that project. Each stored quota is tied to its
  project (``project`` is set to it; another id is refused); ``scope = "organization"`` is refused
  (it would share a counter across projects), and so is an ``id`` the file's quotas already use
  (the id names the counter).

:class:`ProjectSettings` is the running server's view: the stored sections in memory (bounded by
the data, like the key table), re-read when the store's ``config_version`` moves (a write to the
``project_settings`` table bumps it); compiled effective settings are cached per (project, section),
at most :data:`MAX_COMPILED` of them, least recently used dropped first. Lookups never block on I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Mapping

import anyio
from anyio.abc import TaskStatus

from .errors import ConfigError, MinisentryError
from .fanout import Subscription, pause
from .filters import FilterSettings
from .quotas import Quota, quotas_from_config
from .scrubbing import ScrubbingSettings

__all__ = ["SECTIONS", "MAX_COMPILED", "ProjectSettings", "parse_section", "effective_section"]

log = logging.getLogger("minisentry.project_settings")

#: The sections a project may override.
SECTIONS = ("filters", "scrubbing", "quotas")
#: Compiled (project, section) settings kept by one :class:`ProjectSettings`.
MAX_COMPILED = 4096


def parse_section(section: str, raw: Any, *, project_id: int, label: str,
                  file_quota_ids: frozenset[str] = frozenset()) -> Any:
    """Validate one stored section exactly as the config file's parser would, plus the per-project rules.

    Returns the parsed value (FilterSettings / ScrubbingSettings holding only the stored keys'
    values, or a tuple of Quota bound to ``project_id``). Does not block beyond CPU. Raises
    ConfigError naming the key (``filters.error_messages[0]``, ``quotas[1].scope``).
    """
    if section == "filters":
        try:
            return FilterSettings.from_mapping(raw, "filters")
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from exc
    if section == "scrubbing":
        return ScrubbingSettings.from_mapping(raw, "scrubbing", label=label)
    if section == "quotas":
        quotas = quotas_from_config(raw, label=label)
        bound = []
        for index, quota in enumerate(quotas):
            where = f"{label}: quotas[{index}]"
            if quota.project is not None and quota.project != project_id:
                raise ConfigError(f"{where}.project must be {project_id} (this project) or left out, "
                                  f"got {quota.project}")
            if quota.scope == "organization":
                raise ConfigError(f"{where}.scope: a project's quota counts per 'project' or 'key', "
                                  "not 'organization' (that counter is shared by every project)")
            if quota.id in file_quota_ids:
                raise ConfigError(f"{where}.id {quota.id!r} is already used by the config file's [[quotas]] "
                                  "(the id names the counter)")
            bound.append(dataclasses.replace(quota, project=project_id))
        return tuple(bound)
    raise ConfigError(f"{label}: unknown section {section!r} (sections: {', '.join(SECTIONS)})")


def effective_section(section: str, default: Any, raw: Any, parsed: Any) -> Any:
    """Combine the file's ``default`` with a project's stored section (``raw``, parsed as ``parsed``).

    filters/scrubbing: the keys present in ``raw`` replace the default's; quotas: appended.
    """
    if section == "quotas":
        return tuple(default) + tuple(parsed)
    return dataclasses.replace(default, **{key: getattr(parsed, key) for key in raw})


class ProjectSettings:
    """Effective filters, scrubbing and quotas per project; the store's overrides over the file's defaults.

    ``load`` is a blocking callable returning ``{project_id: {section: raw}}`` (the store's
    ``project_settings``). Lookups (:meth:`filters_of`, :meth:`scrubbing_of`, :meth:`quotas_of`)
    never block on I/O and are thread-safe; a miss compiles the section (CPU, well under a
    millisecond). A stored section that no longer validates (written by hand, or by another
    version) is logged and the file's default is used for it.
    """

    def __init__(self, *, filters: FilterSettings, scrubbing: ScrubbingSettings, quotas: tuple[Quota, ...],
                 load: Callable[[], Mapping[int, Mapping[str, Any]]] | None = None,
                 max_compiled: int = MAX_COMPILED) -> None:
        self.defaults = {"filters": filters, "scrubbing": scrubbing, "quotas": tuple(quotas)}
        self._file_quota_ids = frozenset(quota.id for quota in quotas)
        self._load = load
        self._stored: Mapping[int, Mapping[str, Any]] = {}
        self._compiled: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_compiled = max_compiled
        self.version: int | None = None
        # Asked for every envelope: kept up to date on reload instead of scanning the projects.
        self._any_quotas = bool(quotas)

    @classmethod
    def from_config(cls, config: Any, load: Callable[[], Mapping[int, Mapping[str, Any]]] | None = None
                    ) -> "ProjectSettings":
        """The file's sections of ``config`` as defaults; ``load`` reads the store's overrides."""
        return cls(filters=config.filters, scrubbing=config.scrubbing, quotas=tuple(config.quotas), load=load)

    # -- lookups ------------------------------------------------------------------------------------

    def filters_of(self, project_id: int) -> FilterSettings:
        """The project's effective inbound filters. Never blocks on I/O."""
        return self._of(project_id, "filters")

    def scrubbing_of(self, project_id: int) -> ScrubbingSettings:
        """The project's effective scrubbing settings. Never blocks on I/O."""
        return self._of(project_id, "scrubbing")

    def quotas_of(self, project_id: int) -> tuple[Quota, ...]:
        """The file's quotas plus the project's own. Never blocks on I/O."""
        return self._of(project_id, "quotas")

    @property
    def any_quotas(self) -> bool:
        """True if the file or any project has quotas (so the relay must check envelopes)."""
        return self._any_quotas

    def _of(self, project_id: int, section: str) -> Any:
        stored = self._stored.get(project_id)
        if not stored or section not in stored:
            return self.defaults[section]
        key = (project_id, section)
        with self._lock:
            value = self._compiled.get(key)
            if value is not None:
                self._compiled.move_to_end(key)
                return value
        raw = stored[section]
        try:
            parsed = parse_section(section, raw, project_id=project_id, label=f"project {project_id}",
                                   file_quota_ids=self._file_quota_ids)
            value = effective_section(section, self.defaults[section], raw, parsed)
        except ConfigError as exc:
            log.error("stored %s of project %s is invalid, using the config file's: %s", section, project_id, exc)
            value = self.defaults[section]
        with self._lock:
            if self._stored.get(project_id) is stored:  # not replaced by a reload meanwhile
                self._compiled[key] = value
                while len(self._compiled) > self.max_compiled:
                    self._compiled.popitem(last=False)
        return value

    # -- keeping current ------------------------------------------------------------------------------

    def replace(self, stored: Mapping[int, Mapping[str, Any]]) -> None:
        """Swap in freshly read overrides; compiled entries of changed sections are dropped. Never blocks."""
        with self._lock:
            old = self._stored
            for project_id, section in list(self._compiled):
                if (old.get(project_id) or {}).get(section) != (stored.get(project_id) or {}).get(section):
                    del self._compiled[(project_id, section)]
            self._stored = stored
            self._any_quotas = bool(self.defaults["quotas"]) or any("quotas" in s for s in stored.values())

    def reload(self) -> None:
        """Read the overrides from the store now. Blocks on the store; raises what ``load`` raises."""
        if self._load is not None:
            self.replace(self._load())

    async def watch(self, load_version: Callable[[], int], *, interval: float,
                    wake: Subscription | None = None,
                    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Re-read the overrides whenever the store's config version moves, until cancelled.

        Checked every ``interval`` seconds, or at once when ``wake`` (a fan-out subscription) gets
        a publish. ``load_version`` and the load block and run in a worker thread. Reports started
        after the first load. A store error is logged and the current overrides stay in use.
        """
        started = False
        while True:
            try:
                version = await anyio.to_thread.run_sync(load_version)
                if version != self.version:
                    await anyio.to_thread.run_sync(self.reload)
                    self.version = version
            except MinisentryError as exc:
                log.error("cannot refresh project settings, keeping the current ones: %s", exc)
            if not started:
                started = True
                task_status.started()
            await pause(wake, interval)
