"""The ``minisentry`` command line: serve, projects, issues, events, outcomes, plugins, users, tokens, config check."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .config import Config, load_config
from .fanout import TOPIC_PROJECTS
from .errors import MinisentryError
from .plugin_manager import describe_plugins, make_plugin_manager

__all__ = ["cli", "main", "cli_config"]

DEFAULT_CONFIG = "minisentry.toml"


def _load(path: str | None) -> Config:
    path = path or os.environ.get("MINISENTRY_CONFIG") or DEFAULT_CONFIG
    if not Path(path).exists():
        raise click.ClickException(
            f"config file {path} not found; pass --config PATH (the repository's minisentry.toml is a good start)"
        )
    try:
        return load_config(path)
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc


def cli_config(ctx: click.Context) -> Config:
    """The config the running ``minisentry`` command uses (``--config``, $MINISENTRY_CONFIG or
    ./minisentry.toml); for plugins' commands. Does not block; raises click.ClickException."""
    return _load(ctx.find_root().obj["config_path"])


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _open_store(ctx: click.Context) -> Any:
    config = _load(ctx.obj["config_path"])
    from .plugin_manager import collect

    stores = collect(ctx.obj["pm"], "minisentry_register_stores")
    if config.storage.backend not in stores:
        raise click.ClickException(f"storage.backend: unknown store {config.storage.backend!r}")
    try:
        return config, stores[config.storage.backend].open(config, readonly=False)
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc


def _store_call(ctx: click.Context, fn: Any) -> Any:
    """Open the configured store, return ``fn(store)`` and close it. Store errors become CLI errors."""
    _, store = _open_store(ctx)
    with store:
        try:
            return fn(store)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc


def _publish_change(ctx: click.Context, config: Config, topic: str) -> None:
    """After a store write: wake running servers through the configured fan-out (warn if it fails)."""
    from .backend_registry import publish_change

    warning = publish_change(config, ctx.obj["pm"], topic)
    if warning is not None:
        click.echo(f"Warning: {warning}", err=True)


def _dsn(config: Config, key: str, project_id: int) -> str:
    base = config.server.public_url.rstrip("/") or f"http://{config.server.host}:{config.server.port}"
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{key}@{rest}/{project_id}"


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help=f"Config file (default: $MINISENTRY_CONFIG or ./{DEFAULT_CONFIG}).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """minisentry: Sentry's event-ingestion pipeline in one process."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    if "pm" not in ctx.obj:
        ctx.obj["pm"] = make_plugin_manager()


@cli.group()
def projects() -> None:
    """List and create projects, enable and disable keys, set a project's own settings."""


@projects.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def projects_list(ctx: click.Context, as_json: bool) -> None:
    """List projects with their DSNs."""
    config, store = _open_store(ctx)
    with store:
        rows = store.list_projects()
    for row in rows:
        row["dsns"] = [_dsn(config, key, row["id"]) for key in row["keys"]]
        row["created"] = _iso(row["created"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']:>4}  {row['slug']:<24} {' '.join(row['dsns']) or '(no keys)'}")


@projects.command("create")
@click.argument("slug")
@click.pass_context
def projects_create(ctx: click.Context, slug: str) -> None:
    """Create a project with a new key and print its DSN."""
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,49}", slug):
        raise click.BadParameter("use lowercase letters, digits, '-' and '_' (max 50)", param_hint="SLUG")
    config, store = _open_store(ctx)
    with store:
        try:
            project_id, key = store.create_project(slug)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    _publish_change(ctx, config, TOPIC_PROJECTS)
    click.echo(_dsn(config, key, project_id))


@projects.command("disable-key")
@click.argument("key")
@click.pass_context
def projects_disable_key(ctx: click.Context, key: str) -> None:
    """Refuse a public key (403) from now on; running servers follow within a second."""
    _set_key(ctx, key, False)


@projects.command("enable-key")
@click.argument("key")
@click.pass_context
def projects_enable_key(ctx: click.Context, key: str) -> None:
    """Accept a previously disabled public key again."""
    _set_key(ctx, key, True)


def _set_key(ctx: click.Context, key: str, active: bool) -> None:
    _store_call(ctx, lambda store: store.set_key_active(key.strip().lower(), active))
    _publish_change(ctx, _load(ctx.obj["config_path"]), TOPIC_PROJECTS)
    click.echo(f"key {key} {'enabled' if active else 'disabled'}")


@cli.command()
@click.option("--project", default=None, help="Only this project's issues (slug).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def issues(ctx: click.Context, project: str | None, limit: int, as_json: bool) -> None:
    """List issues, most recently seen first."""
    rows = _store_call(ctx, lambda store: store.list_issues(project, limit=limit))
    for row in rows:
        row["first_seen"] = _iso(row["first_seen"])
        row["last_seen"] = _iso(row["last_seen"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no issues")
    for row in rows:
        click.echo(f"#{row['id']:<5} {row['level']:<8} {row['count']:>6}x  {row['project']:<12} {row['title']}"
                   f"{'  (' + row['culprit'] + ')' if row['culprit'] else ''}  last seen {row['last_seen']}")


@cli.command()
@click.option("--project", default=None, help="Only this project's releases (slug).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def releases(ctx: click.Context, project: str | None, as_json: bool) -> None:
    """Release health: sessions started, crashed, errored and the crash-free rate per release."""
    rows = _store_call(ctx, lambda store: store.release_health(project))
    for row in rows:
        row["first_seen"], row["last_seen"] = _iso(row["first_seen"]), _iso(row["last_seen"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no sessions")
    for row in rows:
        rate = "-" if row["crash_free_rate"] is None else f"{row['crash_free_rate'] * 100:.2f}%"
        click.echo(f"{row['project']:<12} {row['release']:<24} {row['environment']:<12} started {row['started']:>7} "
                   f"crashed {row['crashed']:>5} errored {row['errored']:>5} abnormal {row['abnormal']:>4} "
                   f"crash-free {rate}")


@cli.command()
@click.option("--project", default=None, help="Only this project's feedback (slug).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def feedback(ctx: click.Context, project: str | None, as_json: bool) -> None:
    """User reports and feedback, newest first, with the event and issue they are about."""
    rows = _store_call(ctx, lambda store: store.list_feedback(project))
    for row in rows:
        row["received"] = _iso(row["received"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no feedback")
    for row in rows:
        about = f"issue #{row['issue_id']}" if row["issue_id"] else (row["event_id"] or "no event")
        click.echo(f"{row['received']}  {row['project']:<12} {row['name'] or '-'} <{row['email'] or '-'}> "
                   f"({about}): {row['message']}")


@cli.command()
@click.option("--project", default=None, help="Only this project's logs (slug).")
@click.option("--level", default=None, help="Only this level (trace, debug, info, warn, error, fatal).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def logs(ctx: click.Context, project: str | None, level: str | None, limit: int, as_json: bool) -> None:
    """Log records sent by SDKs (log items), newest first."""
    rows = _store_call(ctx, lambda store: store.list_logs(project, level=level, limit=limit))
    for row in rows:
        row["timestamp"] = _iso(row["timestamp"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no logs")
    for row in rows:
        click.echo(f"{row['timestamp']}  {row['project']:<12} {row['level']:<6} {row['body']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def monitors(ctx: click.Context, as_json: bool) -> None:
    """Cron monitors: status, schedule, last check-in, next expected, recent check-ins."""
    rows = _store_call(ctx, lambda store: store.list_monitors())
    for row in rows:
        row["last_checkin"], row["next_expected"] = _iso(row["last_checkin"]), _iso(row["next_expected"])
        for check_in in row["recent"]:
            check_in["started"] = _iso(check_in["started"])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no monitors")
    for row in rows:
        schedule = (row["config"] or {}).get("schedule", {}).get("value", "-")
        recent = " ".join(c["status"] for c in row["recent"][:5])
        click.echo(f"project {row['project_id']:<4} {row['slug']:<24} {row['status']:<12} schedule {schedule!s:<16} "
                   f"last {row['last_checkin'] or '-'}  next {row['next_expected'] or '-'}  [{recent}]")


@cli.group()
def events() -> None:
    """Inspect stored events."""


@events.command("attachments")
@click.argument("event_id")
@click.option("--get", "get_id", type=int, default=None, help="Download the attachment with this id.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="With --get: write here (default: its file name in the current folder).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def events_attachments(ctx: click.Context, event_id: str, get_id: int | None, output: str | None, as_json: bool) -> None:
    """List an event's attachments, or download one with --get ID."""
    _, store = _open_store(ctx)
    with store:
        try:
            rows = store.list_attachments(event_id)
            if get_id is not None:
                if get_id not in {row["id"] for row in rows}:
                    raise click.ClickException(f"event {event_id} has no attachment {get_id}")
                meta, data = store.attachment_data(get_id)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    if get_id is not None:
        # Only the base name: a file name chosen by the SDK must not write outside the folder.
        target = Path(output) if output else Path(Path(meta["filename"]).name or "attachment")
        target.write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {target}")
        return
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no attachments")
    for row in rows:
        click.echo(f"{row['id']:>6}  {row['filename']:<32} {row['content_type']:<28} {row['size']:>10} bytes")


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print the stored event JSON.")
@click.pass_context
def events_show(ctx: click.Context, event_id: str, as_json: bool) -> None:
    """Show one event or transaction by id."""
    event = _store_call(ctx, lambda store: store.get_event(event_id))
    if as_json:
        click.echo(json.dumps(event, indent=2))
        return
    click.echo(_render_event(event))


def _render_event(event: dict[str, Any]) -> str:
    data = event["data"]
    lines = [f"event {event['event_id']} ({event['kind']}, project {event['project_id']}, issue {event['issue_id']})",
             f"title:    {data.get('title') or data.get('transaction') or ''}",
             f"level:    {data.get('level', '')}   platform: {data.get('platform', '')}   "
             f"time: {_iso(data.get('timestamp'))}"]
    for exc in (data.get("exception") or {}).get("values") or []:
        lines.append(f"{exc.get('type')}: {exc.get('value')}")
        for frame in ((exc.get("stacktrace") or {}).get("frames") or [])[::-1]:
            where = frame.get("module") or frame.get("filename") or "?"
            mark = "*" if frame.get("in_app") else " "
            lines.append(f"  {mark} {where} in {frame.get('function')} line {frame.get('lineno')}")
            if frame.get("context_line"):
                lines.append(f"        {frame['context_line'].strip()}")
    logentry = data.get("logentry") or {}
    if logentry.get("formatted"):
        lines.append(f"message:  {logentry['formatted']}")
    return "\n".join(lines)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def outcomes(ctx: click.Context, as_json: bool) -> None:
    """Show outcome totals: what was accepted, filtered, rate limited or invalid, and why."""
    rows = _store_call(ctx, lambda store: store.outcome_totals())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"project {row['project_id']:<4} {row['outcome']:<14} {row['category']:<12} "
                   f"{row['reason'] or '-':<24} {row['quantity']}")


@cli.command()
@click.option("--interval", default="1h", show_default=True, help="Bucket size: 1m, 1h, 1d ...")
@click.option("--period", default="24h", show_default=True, help="How far back: 24h, 14d ...")
@click.option("--group-by", "group_by", multiple=True, default=("outcome", "category"), show_default=True,
              type=click.Choice(["outcome", "category", "reason", "project"]))
@click.option("--json", "as_json", is_flag=True, help="Print Sentry's stats_v2 JSON.")
@click.pass_context
def stats(ctx: click.Context, interval: str, period: str, group_by: tuple[str, ...], as_json: bool) -> None:
    """Outcomes over time (accepted, filtered, rate limited, invalid, client discards) per interval."""
    from .stats import stats_v2

    _, store = _open_store(ctx)
    with store:
        try:
            result = stats_v2(store, interval=interval, period=period, group_by=tuple(group_by))
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if not result["groups"]:
        click.echo(f"no outcomes in the last {period}")
    for group in result["groups"]:
        label = " ".join(f"{k}={v}" for k, v in group["by"].items())
        series = [(t, q) for t, q in zip(result["intervals"], group["series"]["sum(quantity)"]) if q]
        click.echo(f"{label}: {group['totals']['sum(quantity)']} "
                   f"({', '.join(f'{t} {q}' for t, q in series[-6:])})")


@cli.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List loaded plugins, their versions and the hooks each implements."""
    for info in describe_plugins(ctx.obj["pm"]):
        click.echo(f"{info.name} {info.version}: {', '.join(info.hooks) or '(no hooks)'}")


@cli.group("config")
def config_group() -> None:
    """Work with the config file."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config file and print a summary."""
    config = _load(ctx.obj["config_path"])
    click.echo(f"{config.source}: ok ({len(config.projects)} project(s), store {config.storage.path}, "
               f"channels {config.channels.backend})")


def main() -> None:
    """Entry point of the ``minisentry`` script. Exits 1 with a message if a plugin fails to load."""
    try:
        pm = make_plugin_manager()
        pm.hook.minisentry_register_commands(cli=cli)
    except MinisentryError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli(obj={"pm": pm})


from .cli_killswitches import killswitches  # noqa: E402  (late: that module imports helpers from this one)
from .cli_serve import serve  # noqa: E402
from .cli_sourcemaps import sourcemaps  # noqa: E402
from .cli_users import users  # noqa: E402
from .cli_tokens import tokens  # noqa: E402
cli.add_command(killswitches)
cli.add_command(serve)
cli.add_command(sourcemaps)
cli.add_command(users)
cli.add_command(tokens)
from .cli_ops import lanes, relay_group, status  # noqa: E402  (late, as above)
cli.add_command(lanes)
cli.add_command(status)
cli.add_command(relay_group)
from .cli_settings import settings as project_settings  # noqa: E402  (late, as above)
projects.add_command(project_settings)
