"""The Pipeline: every channel and every stage, wired in one place.

::

    HTTP ─▶ relay ─[ingest]─▶ ingest ─[symbolicate]─▶ symbolicate ─[process]─▶ process ─[store]─▶ store

``async with Pipeline(config) as pipeline:`` opens the store, builds the four channels from the
configured channel backend, starts each stage's workers in one task group and (unless
``http=False``) the HTTP front door. Leaving the block shuts down in order: stop accepting, let the
relay's last requests finish, close the relay's sender, and let every stage drain its inbox into the
next; after ``stages.drain_timeout`` whatever still runs is cancelled.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pluggy

from .api import WebApi
from .alert_wiring import make_alert_worker, run_alerts
from .artifacts import ArtifactStore
from .uploadapi import UploadApi
from .web import WebUi
from .web.panels import collect_panels
from .pipeline_status import pipeline_status
from .backend_registry import open_backends
from .channels import Channel, ChannelStats
from .config import Config
from .context import StageContext
from .difs import DifStore
from .envelope import Envelope, parse_envelope
from .errors import ConfigError, PipelineError, PluginError, StorageError
from .httpserver import HttpLimits, HttpServer
from .killswitches import KillSwitches
from .outcomes import OutcomeAggregator
from .monitors import CheckInQueue
from .queues import BoundedQueue
from .sessions import SessionAggregator
from .spool import DiskSpool
from .lanes import LaneSelector, make_lane_selector
from .metrics import Health, health_of, render
from .pipeline_metrics import counters_of
from .edge import start_edge_relay
from .ops import OpsHandler
from .plugin_items import PluginItems
from .plugin_manager import collect, make_plugin_manager
from .projects import ProjectKeys
from .project_settings import ProjectSettings
from .stages import IngestStage, ProcessStage, StoreStage, SymbolicateStage
from .stages.store import write_side_records_blocking
from .stages.relay import Relay
from .app_tasks import PipelineTasks
from .stages.routing import DemotingReceiver, LaneRouter

__all__ = ["Pipeline"]

log = logging.getLogger("minisentry")

# The channels, in pipeline order; each is the inbox of the stage of the same name.
_CHANNELS = ("ingest", "symbolicate", "symbolicate_slow", "process", "store")
#: What ``--role`` accepts; ``all`` runs every stage (the only choice with in-memory channels).
ROLES = ("relay", "ingest", "symbolicate", "process", "store")


class Pipeline(PipelineTasks):
    """minisentry's whole pipeline, embeddable in another anyio program.

    ``http=False`` runs the stages without the front door; feed it with :meth:`submit`. ``roles``
    picks the stages this process runs (default: all of them); a subset needs a channel backend
    that crosses processes (Kafka). Without the ``relay`` role, ``http=True`` serves only the health
    probes and ``/metrics`` on ``server.port``. Entering
    blocks on opening the store (in a worker thread) and binding the port. Raises ConfigError for an
    unknown backend or role, StorageError when the store cannot be opened, PluginError for broken
    plugins, BackendError when Kafka or a shared backend (``[backends]``, e.g. Redis) cannot be reached.
    """

    def __init__(self, config: Config, *, http: bool = True, plugin_manager: pluggy.PluginManager | None = None,
                 roles: tuple[str, ...] | None = None) -> None:
        self.config = config
        self.roles = frozenset(ROLES if not roles or "all" in roles else roles)
        unknown = self.roles - set(ROLES)
        if unknown:
            raise ConfigError(f"unknown role(s) {', '.join(sorted(unknown))} (roles: all, {', '.join(ROLES)})")
        self.http = http
        self.pm = plugin_manager or make_plugin_manager()
        self.outcomes = OutcomeAggregator()
        self.channels: dict[str, Channel] = {}
        self.store: Any = None
        self.backends: Any = None
        self.relay: Relay | None = None
        self.server: HttpServer | None = None
        self.context: StageContext | None = None
        self.lanes: LaneSelector | None = None
        self.killswitches = KillSwitches()
        #: Effective filters, scrubbing and quotas per project (the file's sections + the store's overrides).
        self.settings: ProjectSettings | None = None
        self._watch_scopes: list[anyio.CancelScope] = []
        self.spool: DiskSpool | None = None
        self._spool_scope = anyio.CancelScope()
        self._salvage: Any = None
        #: Edge relays only (``[upstream] url``): forwards instead of the ingest..store stages.
        self.forwarder: Any = None  # the edge relay's Forwarder (edge.py)
        self._read_store: Any = None
        #: The alert worker (alerts.py), in the process with the store role when ``[alerts]`` has rules.
        self.alerts: Any = None
        #: Uploaded source maps (relay role): chunks, bundles and their index (artifacts.py).
        self.artifacts: ArtifactStore | None = None
        self.difs: DifStore | None = None
        #: The bound symbolicators the symbolicate stage runs.
        self.symbolicators: list[Any] = []
        self._bound_channels: Any = None
        self._producer_scope = anyio.CancelScope()
        self._task_group: Any = None
        self._started = 0.0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> "Pipeline":
        config = self.config
        backends = collect(self.pm, "minisentry_register_channel_backends")
        stores = collect(self.pm, "minisentry_register_stores")
        if config.channels.backend not in backends:
            raise ConfigError(f"channels.backend: unknown backend {config.channels.backend!r} "
                              f"(registered: {', '.join(sorted(backends))})")
        if config.storage.backend not in stores:
            raise ConfigError(f"storage.backend: unknown store {config.storage.backend!r} "
                              f"(registered: {', '.join(sorted(stores))})")
        store_factory = stores[config.storage.backend]
        plugin_items = PluginItems.collect(self.pm)
        ui_panels = collect_panels(self.pm)  # a duplicate or broken panel stops startup here
        self.store = await anyio.to_thread.run_sync(store_factory.open, config)
        if plugin_items:
            await anyio.to_thread.run_sync(_migrate_plugins, self.store, plugin_items)
        await anyio.to_thread.run_sync(self.store.seed_projects, config.projects)
        # Before any channel or task exists, so a bad alert target stops startup with a plain ConfigError.
        self.alerts = make_alert_worker(self) if "store" in self.roles else None
        self._read_store = await anyio.to_thread.run_sync(store_factory.open, config, True)
        self.backends = await anyio.to_thread.run_sync(open_backends, config, self.pm)
        if config.spool.path is not None:
            self.spool = DiskSpool(config.spool.path, max_bytes=config.spool.max_bytes, max_age=config.spool.max_age,
                                   retry_after=config.stages.retry_after)
            await anyio.to_thread.run_sync(self.spool.open)
        backend = backends[config.channels.backend]
        if self.roles != set(ROLES) and not hasattr(backend, "bind"):
            raise ConfigError(f"--role {','.join(sorted(self.roles))} needs channels that cross processes "
                              f"(channels.backend = 'kafka'); {config.channels.backend!r} lives in one process")
        if self.roles != set(ROLES) and config.backends.payloads == "memory":
            raise ConfigError("--role with Kafka channels needs a payload store every process shares "
                              "([backends] payloads = 'redis'): large messages travel through it")
        self._bound_channels = backend.bind(config, self.backends.payloads) if hasattr(backend, "bind") else None
        if self._bound_channels is not None:
            await anyio.to_thread.run_sync(self._bound_channels.prepare)
        channel_factory = self._bound_channels or backend
        self.channels = {edge: channel_factory(edge, config.channels.capacity_of(edge)) for edge in _CHANNELS}
        self.lanes = make_lane_selector(config.lanes)
        # A store without per-project settings (a plugin's) leaves the file's sections for everyone.
        self.settings = ProjectSettings.from_config(config, getattr(self._read_store, "project_settings", None))

        self.context = StageContext(config=config, outcomes=self.outcomes, store=self.store, hooks=self.pm.hook,
                                    lanes=self.lanes, killswitches=self.killswitches, sessions=SessionAggregator(),
                                    check_ins=CheckInQueue(), logs=BoundedQueue(limit=100_000),
                                    settings=self.settings, plugin_items=plugin_items)
        keys = ProjectKeys(self._read_store.project_keys)
        # Reads go to the read-only store; status changes and stored tokens need the writable one.
        api = WebApi(self._read_store, config.api.tokens, collect(self.pm, "minisentry_register_api_routes"),
                     writer=self.store, organization=config.sourcemaps.organization)
        self.relay = Relay(config, keys, self.outcomes, api, self.backends.quota_counters, settings=self.settings)
        self.relay.plugin_items = plugin_items
        if config.web.enabled and "relay" in self.roles and hasattr(self.store, "web_session_user"):
            self.relay.web = WebUi(self.store, config.web, config.server.public_url,
                                   trusted_proxies=self.relay.trusted_proxies,
                                   status_of=lambda: pipeline_status(self), reader=self._read_store,
                                   panels=ui_panels)
        if "relay" in self.roles and not config.upstream.url:
            self.artifacts = await anyio.to_thread.run_sync(ArtifactStore(config.sourcemaps).open)
            self.difs = await anyio.to_thread.run_sync(
                DifStore(config.sourcemaps.path, config.native, self.artifacts.chunks).open)
            self.relay.uploads = UploadApi(config, self.artifacts, self._read_store, self.difs)

        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            # Kill-switch values are in place before the first event flows, then followed live.
            await self._task_group.start(self._watch_killswitches)
            await self._task_group.start(self._watch_keys, keys)
            await self._task_group.start(self._watch_settings)
            await self._task_group.start(self._watch_lane_overrides)
            if "store" in self.roles:
                self._task_group.start_soon(self._monitor_clock)
                self._task_group.start_soon(self._retention)
                if self.alerts is not None:
                    self._task_group.start_soon(run_alerts, self, self.alerts)
            else:
                self._task_group.start_soon(self._write_side_records)
            if self._bound_channels is not None:
                await self._task_group.start(self._run_producer)
            if config.upstream.url:
                await self._start_forwarder()
            else:
                if "symbolicate" in self.roles:
                    self.symbolicators = await anyio.to_thread.run_sync(self._bind_symbolicators)
                self._start_stages()
            if "relay" in self.roles:
                self.relay.sender = self.channels["ingest"].sender()
            if self.spool is not None and "relay" in self.roles:
                self.relay.spool = self.spool
                if not getattr(self.channels["ingest"], "durable", False):
                    # What a memory channel holds at a hurried shutdown is moved to the spool.
                    self._salvage = self.channels["ingest"].receiver()
                if self.forwarder is None:  # the forwarder replays its spool itself
                    self._task_group.start_soon(self._drain_spool, self.channels["ingest"].sender())
            for channel in self.channels.values():
                await channel.close_originals()
                if hasattr(channel, "run"):
                    await self._task_group.start(self._run_channel, channel)
            if self.http:
                server = config.server
                # Without the relay role the port serves only the probes and /metrics (ops.py).
                handler = self.relay if "relay" in self.roles else OpsHandler(
                    ", ".join(r for r in ROLES if r in self.roles), self.health, self.metrics_text)
                self.server = HttpServer(handler, HttpLimits(
                    max_connections=server.max_connections, max_header_bytes=server.max_header_bytes,
                    max_pipelined_requests=server.max_pipelined_requests, read_timeout=server.read_timeout,
                    keepalive_timeout=server.keepalive_timeout,
                ))
                await self._task_group.start(self.server.serve, server.host, server.port)
        except BaseException as exc:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self.relay.health = self.health
        self.relay.metrics = self.metrics_text
        self.relay.ready = True
        self._started = time.monotonic()
        return self

    def _bind_symbolicators(self) -> list[Any]:
        """The registered symbolicators; one with ``bind(config)`` is bound first (None: left out). Blocks."""
        bound = []
        for symbolicator in collect(self.pm, "minisentry_register_symbolicators").values():
            if hasattr(symbolicator, "bind"):
                symbolicator = symbolicator.bind(self.config)
            if symbolicator is not None:
                bound.append(symbolicator)
        return bound

    def _start_stages(self) -> None:
        """Start every stage's workers; the whole topology is here.

        ingest ─▶ symbolicate (fast lane) ─┬─▶ process ─▶ store
               └▶ symbolicate_slow ────────┘
        """
        assert self.context is not None
        channels, concurrency, lanes = self.channels, self.config.stages.concurrency_of, self.lanes
        symbolicate = SymbolicateStage(self.symbolicators)
        roles = self.roles
        workers: list[tuple[Any, Any, Any, str]] = []
        for _ in range(concurrency("ingest") if "ingest" in roles else 0):
            router = LaneRouter(channels["symbolicate"].sender(), channels["symbolicate_slow"].sender(), lanes)
            workers.append((IngestStage(), channels["ingest"].receiver(), router, "ingest"))
        for _ in range(concurrency("symbolicate") if "symbolicate" in roles else 0):
            inbox = DemotingReceiver(channels["symbolicate"].receiver(), channels["symbolicate_slow"].sender(), lanes)
            workers.append((symbolicate, inbox, channels["process"].sender(), "symbolicate"))
        for _ in range(concurrency("symbolicate_slow") if "symbolicate" in roles else 0):
            workers.append((symbolicate, channels["symbolicate_slow"].receiver(), channels["process"].sender(),
                            "symbolicate_slow"))
        process_workers = self.config.stages.process_workers
        process = ProcessStage(process_workers)
        # Enough stage workers to keep every worker process busy.
        for _ in range(max(concurrency("process"), process_workers) if "process" in roles else 0):
            workers.append((process, channels["process"].receiver(), channels["store"].sender(), "process"))
        if "store" in roles:
            workers.append((StoreStage(), channels["store"].receiver(), None, "store"))
        for stage, inbox, outbox, name in workers:
            self._task_group.start_soon(self._run_stage, stage, inbox, outbox, name=f"stage-{name}")

    # -- edge relay (stacked relays) ----------------------------------------------------------------

    async def _start_forwarder(self) -> None:
        """Edge relay: forward what the relay accepts to ``[upstream] url`` (see edge.py)."""
        self.forwarder = await start_edge_relay(self, self._task_group)

    async def _run_stage(self, stage: Any, inbox: Any, outbox: Any) -> None:
        try:
            await stage.run(inbox, outbox, self.context)
        except Exception as exc:
            log.exception("stage %s crashed", stage.name)
            raise PipelineError(f"stage {stage.name} crashed: {exc}") from exc

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self._stop_accepting()
            if self.spool is not None and self._salvage is not None:
                # Keep most of the drain time for draining; what the ingest channel still holds
                # near the end goes to disk instead of being lost to the deadline.
                with anyio.move_on_after(self.config.stages.drain_timeout * 0.8):
                    while not self._channels_idle():
                        await anyio.sleep(0.01)
                await self._spool_leftovers()
                await self._salvage.aclose()
        self._task_group.cancel_scope.deadline = anyio.current_time() + self.config.stages.drain_timeout
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            if self._task_group.cancel_scope.cancel_called and exc_type is None:
                log.warning("drain did not finish within %.1fs; in-flight work was cancelled",
                            self.config.stages.drain_timeout)
            with anyio.CancelScope(shield=True):
                for symbolicator in self.symbolicators:
                    if hasattr(symbolicator, "aclose"):
                        await symbolicator.aclose()
                await anyio.to_thread.run_sync(self._close_stores)

    async def _stop_accepting(self) -> None:
        assert self.relay is not None
        for scope in self._watch_scopes:
            scope.cancel()
        for channel in self.channels.values():
            if hasattr(channel, "finish"):
                channel.finish()  # Kafka: stop fetching; the topic keeps the rest for the next start
        self._spool_scope.cancel()  # what is still spooled stays on disk for the next start
        self.relay.ready = False
        if self.server is not None:
            self.server.shutdown()
            # Requests already being answered finish; their envelopes reach the channel first.
            while self.server.active_requests:
                await anyio.sleep(0.005)
        if self.relay.sender is not None:
            await self.relay.sender.aclose()
            self.relay.sender = None
        self._producer_scope.cancel()

    def _close_stores(self) -> None:
        if self.context is not None and "store" not in self.roles:
            # Outcomes and side records counted here during the drain (no store stage writes them).
            write_side_records_blocking(self.context)
        if self._bound_channels is not None:
            self._bound_channels.close()
        for store in (self._read_store, self.store, self.spool, self.backends):
            if store is not None:
                store.close()

    # -- embedding API --------------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The bound HTTP port (None without the front door)."""
        return self.server.port if self.server is not None else None

    def dsn(self, public_key: str, project_id: int) -> str:
        """Return the DSN an SDK uses to send to this pipeline's front door."""
        server = self.config.server
        base = server.public_url.rstrip("/") or f"http://{server.host}:{self.port or server.port}"
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{public_key}@{rest}/{project_id}"

    async def submit(self, envelope: bytes | Envelope, project_id: int) -> str | None:
        """Feed an envelope into the pipeline as a trusted caller (no key check); return its event id.

        Raises InvalidEnvelope for malformed bytes, PipelineFull if the pipeline stays full.
        """
        if self.relay is None:
            raise PipelineError("the pipeline is not running")
        if isinstance(envelope, bytes):
            envelope = parse_envelope(envelope)
        return await self.relay.accept(envelope, project_id)

    def statistics(self) -> list[ChannelStats]:
        """Return a snapshot of every channel."""
        return [channel.statistics() for channel in self.channels.values()]

    def health(self, stats: list[ChannelStats] | None = None) -> Health:
        """Readiness from the channels' backlog and staleness (see metrics.health_of)."""
        running = self.relay is not None and self.relay.ready
        return health_of(running, self.statistics() if stats is None else stats, self.config.stages.stale_after)

    def metrics_text(self) -> str:
        """The Prometheus text served at ``/metrics``."""
        stats = self.statistics()
        return render(stats, counters_of(self), self.health(stats).ready)

    def idle(self) -> bool:
        """True when nothing is queued or in flight in any channel and no request is being answered."""
        if self.server is not None and self.server.active_requests:
            return False
        if self.spool is not None and len(self.spool):
            return False
        return self._channels_idle()

    def _channels_idle(self) -> bool:
        # sent == acked also covers a message handed to a receiver that has not run yet.
        return all(stats.sent == stats.acked and stats.senders_waiting == 0 for stats in self.statistics())

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything accepted so far is stored. Raises TimeoutError after ``timeout``."""
        with anyio.fail_after(timeout):
            while not self.idle():
                await anyio.sleep(0.005)


def _migrate_plugins(store: Any, items: PluginItems) -> None:
    """Create the plugins' tables (blocks). Raises ConfigError for a store without plugin tables,
    PluginError naming the item type whose ``migrate`` failed, StorageError from SQLite."""
    if not hasattr(store, "migrate_plugins"):
        raise ConfigError(f"plugins add item types ({', '.join(sorted(items.types))}) but the store "
                          f"{type(store).__name__} cannot keep plugin records")
    for name, item_type in items.types.items():
        try:
            store.migrate_plugins([item_type])
        except StorageError:
            raise
        except Exception as exc:
            raise PluginError(f"item type {name!r}: migrate() failed: {exc}") from exc
