"""``minisentry lanes force|list``, ``minisentry status`` and ``minisentry relay credentials``: operating
a running deployment (lane pins, a server's live channel statistics, edge-relay credentials).
"""

from __future__ import annotations

import json

import click

from .cli import _load, _store_call
from .errors import MinisentryError

__all__ = ["lanes", "relay_group", "status"]


@click.group()
def lanes() -> None:
    """Pin projects to the fast or slow symbolication lane."""


@lanes.command("force")
@click.argument("project_id", type=int)
@click.argument("lane", type=click.Choice(["fast", "slow", "auto"]))
@click.pass_context
def lanes_force(ctx: click.Context, project_id: int, lane: str) -> None:
    """Pin PROJECT_ID to a lane, or 'auto' to let its time budget decide; running servers follow within a second."""
    _store_call(ctx, lambda store: store.set_lane_override(project_id, None if lane == "auto" else lane))
    click.echo(f"project {project_id}: {'time budget decides' if lane == 'auto' else lane + ' lane'}")


@lanes.command("list")
@click.pass_context
def lanes_list(ctx: click.Context) -> None:
    """List the projects pinned with `lanes force`."""
    overrides = _store_call(ctx, lambda store: store.lane_overrides())
    if not overrides:
        click.echo("no project is pinned; time budgets decide")
    for project_id, lane in sorted(overrides.items()):
        click.echo(f"project {project_id}: {lane} lane")


@click.command()
@click.option("--url", default=None, help="Base URL of the running server (default: from [server] in the config).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Show a running server's channels (depth, peak, waiting tasks, oldest age) and counters."""
    import urllib.error
    import urllib.request

    from .metrics import parse

    if url is None:
        config = _load(ctx.obj["config_path"])
        url = config.server.public_url or f"http://{config.server.host}:{config.server.port}"
    target = url.rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(target, timeout=5) as response:  # noqa: S310 - operator-given URL
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach minisentry at {target}: {exc}") from exc
    channels, counters = parse(text)
    if as_json:
        click.echo(json.dumps({"channels": channels, "counters": counters}, indent=2))
        return
    click.echo(f"{'channel':<12} {'depth':>12} {'peak':>6} {'senders':>8} {'receivers':>9} {'in flight':>9} "
               f"{'oldest s':>9} {'sent':>10} {'acked':>10}")
    for name, values in channels.items():
        click.echo(f"{name:<12} {int(values.get('depth', 0)):>5}/{int(values.get('capacity', 0)):<6} "
                   f"{int(values.get('peak_depth', 0)):>6} {int(values.get('senders_waiting', 0)):>8} "
                   f"{int(values.get('receivers_waiting', 0)):>9} {int(values.get('in_flight', 0)):>9} "
                   f"{values.get('oldest_age_seconds', 0.0):>9.2f} {int(values.get('sent_total', 0)):>10} "
                   f"{int(values.get('acked_total', 0)):>10}")
    for name, value in counters.items():
        click.echo(f"{name.removeprefix('minisentry_')}: {value:g}")


# -- stacked relays ------------------------------------------------------------------------------

@click.group("relay")
def relay_group() -> None:
    """Credentials for running as an edge relay in front of another minisentry."""


@relay_group.command("credentials")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def relay_credentials(path: str, overwrite: bool) -> None:
    """Write a new relay id and ed25519 key pair to PATH and print the upstream's [[relays]] entry."""
    from .relayauth import generate_credentials

    credentials = generate_credentials()
    try:
        credentials.save(path, overwrite=overwrite)
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}; add this to the upstream's config:\n\n[[relays]]\n"
               f'id = "{credentials.relay_id}"\npublic_key = "{credentials.public_key}"')
