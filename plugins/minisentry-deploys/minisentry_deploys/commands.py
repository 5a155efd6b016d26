"""``minisentry deploys list`` and ``minisentry deploys for-issue ISSUE_ID`` (read the store's file)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from typing import Any

import click

from .queries import NoSuchIssue, deploy_before_issue, list_deploys


def _connect(ctx: click.Context) -> sqlite3.Connection:
    from minisentry.cli import cli_config

    path = cli_config(ctx).storage.path
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot open the store {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _line(row: dict[str, Any]) -> str:
    url = f"  {row['url']}" if row.get("url") else ""
    return f"{_iso(row['timestamp'])}  project {row['project_id']}  {row['release']}  {row['environment']}{url}"


@click.group()
def deploys() -> None:
    """Deploy markers (minisentry-deploys plugin)."""


@deploys.command("list")
@click.option("--project", "project_id", type=int, default=None, help="Only this project id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def deploys_list(ctx: click.Context, project_id: int | None, limit: int, as_json: bool) -> None:
    """List deploy markers, newest first."""
    with _connect(ctx) as conn:
        rows = list_deploys(conn, project_id, limit)
    if as_json:
        click.echo(json.dumps(rows))
    elif not rows:
        click.echo("no deploys")
    for row in rows if not as_json else ():
        click.echo(_line(row))


@deploys.command("for-issue")
@click.argument("issue_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (null: no deploy before the issue).")
@click.pass_context
def deploys_for_issue(ctx: click.Context, issue_id: int, as_json: bool) -> None:
    """Show the last deploy of the issue's project before it was first seen."""
    with _connect(ctx) as conn:
        try:
            issue, deploy = deploy_before_issue(conn, issue_id)
        except NoSuchIssue as exc:
            raise click.ClickException(str(exc)) from exc
    rows = [deploy] if deploy is not None else []
    if as_json:
        click.echo(json.dumps(rows[0] if rows else None))
    elif rows:
        click.echo(f"issue {issue_id} first seen {_iso(issue['first_seen'])}, after deploy {rows[0]['release']} "
                   f"({rows[0]['environment']}) at {_iso(rows[0]['timestamp'])}")
    else:
        click.echo(f"issue {issue_id}: no deploy before it was first seen")
