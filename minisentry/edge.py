"""Starting an edge relay inside a Pipeline (``[upstream] url``): the forwarder instead of ingest..store.

The forwarder's workers read the ingest channel; project keys come from the upstream's project
configs (refreshed in the background); the upstream's rate limits are enforced by the relay. The
forwarding itself is forwarder.py; this module only wires it into a running Pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from .errors import PipelineError
from .forwarder import Forwarder
from .projectconfigs import UpstreamProjectKeys
from .relayauth import load_credentials
from .upstream import UpstreamClient
from .upstreamlimits import UpstreamLimits

__all__ = ["start_edge_relay"]

log = logging.getLogger("minisentry")


async def start_edge_relay(pipeline: Any, task_group: Any) -> Forwarder:
    """Start the forwarder and the project-config refresher in ``task_group``; return the forwarder.

    Blocks on reading the credentials file (in a worker thread). Raises ConfigError for unreadable
    credentials.
    """
    upstream, relay = pipeline.config.upstream, pipeline.relay
    credentials = await anyio.to_thread.run_sync(load_credentials, upstream.credentials)
    client = UpstreamClient(upstream, credentials)
    keys = UpstreamProjectKeys(client.project_configs, ttl=upstream.project_ttl,
                               negative_ttl=upstream.project_negative_ttl, max_keys=upstream.max_projects,
                               retry_after=pipeline.config.stages.retry_after)
    relay.keys = keys
    relay.upstream_limits = UpstreamLimits(max_scopes=upstream.max_projects)
    forwarder = Forwarder(client, spool=pipeline.spool, outcomes=pipeline.outcomes,
                          limits=relay.upstream_limits, store=pipeline.store)
    inboxes = [pipeline.channels["ingest"].receiver() for _ in range(upstream.max_concurrency)]

    async def run_forwarder(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await forwarder.run(inboxes, task_status=task_status)
        except Exception as exc:
            log.exception("the forwarder crashed")
            raise PipelineError(f"the forwarder crashed: {exc}") from exc
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def refresh_keys(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        with pipeline.watcher_scope():
            await keys.refresh(task_status=task_status)

    await task_group.start(run_forwarder)
    await task_group.start(refresh_keys)
    return forwarder
