"""``minisentry serve``: run the pipeline (or some of its stages) until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import anyio
import click

from .cli import _load
from .config import Config, check_upstream
from .errors import MinisentryError

__all__ = ["serve"]


@click.command()
@click.option("--config", "serve_config", type=click.Path(dir_okay=False), default=None, help="Config file.")
@click.option("--host", default=None, help="Override [server] host.")
@click.option("--port", type=int, default=None, help="Override [server] port (0 picks a free port).")
@click.option("--upstream", default=None, metavar="URL",
              help="Run as an edge relay forwarding to the minisentry at URL (overrides [upstream] url).")
@click.option("--role", "roles", multiple=True, metavar="ROLE",
              help="Stages to run: all (default), relay, ingest, symbolicate, process, store. Repeat the option "
                   "or separate with commas; a subset needs channels.backend = 'kafka'. Without relay, "
                   "--port serves only health probes and /metrics.")
@click.pass_context
def serve(ctx: click.Context, serve_config: str | None, host: str | None, port: int | None,
          upstream: str | None, roles: tuple[str, ...]) -> None:
    """Run the pipeline and the HTTP front door until SIGINT/SIGTERM, then drain and exit 0."""
    from .app import ROLES

    chosen = tuple(part.strip() for value in roles for part in value.split(",") if part.strip())
    for role in chosen:
        if role != "all" and role not in ROLES:
            raise click.BadParameter(f"unknown role {role!r} (choose from all, {', '.join(ROLES)})",
                                     param_hint="--role")
    config = _load(serve_config or ctx.obj["config_path"])
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if overrides:
        config = config.replace(server=overrides)
    if upstream is not None:  # stacked relays (upstream.py): validated like [upstream] in the file
        config = config.replace(upstream={"url": upstream})
        try:
            check_upstream(config, "--upstream")
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # an edge relay would log every forwarded request
    try:
        # A worker role (no relay) serves its probes and /metrics only when given a --port.
        http = not chosen or "all" in chosen or "relay" in chosen or port is not None
        anyio.run(_serve, config, ctx.obj["pm"], chosen, http, backend=config.server.backend)
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc


async def _wait_for_signal(signals: Any, config: Config) -> None:
    async for signum in signals:
        click.echo(f"received {signal.Signals(signum).name}, draining (up to {config.stages.drain_timeout:g}s)")
        sys.stdout.flush()
        break


async def _serve(config: Config, pm: Any, roles: tuple[str, ...] = (), http: bool = True) -> None:
    from .app import ROLES as ROLES_ALL, Pipeline
    from .gctuning import tune_for_serving

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Pipeline(config, plugin_manager=pm, roles=roles or None, http=http) as pipeline:
            if pipeline.roles != set(ROLES_ALL):
                click.echo(f"minisentry roles: {', '.join(r for r in ROLES_ALL if r in pipeline.roles)} "
                           f"(channels: {config.channels.backend})")
            if pipeline.port is not None and "relay" in pipeline.roles:
                await _announce(config, pipeline)
            elif pipeline.port is not None:
                click.echo(f"probes and /metrics on http://{config.server.host}:{pipeline.port}")
            sys.stdout.flush()
            tune_for_serving()  # startup is done: what lives now lives as long as the process
            await _wait_for_signal(signals, config)
    click.echo("stopped")


async def _announce(config: Config, pipeline: Any) -> None:
    """Print where the front door listens and the DSN of every project."""
    click.echo(f"minisentry listening on http://{config.server.host}:{pipeline.port} (store: {config.storage.path})")
    if config.upstream.url:
        click.echo(f"edge relay: forwarding to {config.upstream.url}")
    projects = await anyio.to_thread.run_sync(pipeline.store.list_projects)
    for project in projects:
        for key in project["keys"]:
            click.echo(f"DSN for project {project['slug']}: {pipeline.dsn(key, project['id'])}")
    sys.stdout.flush()
