"""``minisentry killswitches``: list, pull and push kill-switch values in the store.

``pull NAME FILE`` writes a commented JSON file (format: :mod:`minisentry.killswitches`); after
editing it, ``push NAME FILE`` validates it strictly, previews Before/After and asks before storing.
A running server picks a pushed value up within a second (``KillSwitches.watch``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .errors import KillSwitchError, MinisentryError
from .fanout import TOPIC_KILLSWITCHES
from .killswitches import SWITCHES, describe, parse_file, render_file, switch, to_json, validate

__all__ = ["killswitches"]


def _open_store(ctx: click.Context) -> Any:
    # cli.py imports this module at its end to register the group: import it late, not at the top.
    from .cli import _open_store as open_store

    return open_store(ctx)


def _publish_change(ctx: click.Context, config: Any, topic: str) -> None:
    from .cli import _publish_change as publish_change

    publish_change(ctx, config, topic)


def _stored(store: Any) -> dict[str, Any]:
    try:
        return store.killswitch_values()
    except MinisentryError as exc:
        raise click.ClickException(str(exc)) from exc


def _describe_stored(name: str, raw: dict[str, Any]) -> str:
    if name not in raw:
        return describe(())
    try:
        return describe(validate(name, raw[name]), SWITCHES[name].action)
    except KillSwitchError as exc:
        # Written by hand or by another version: show it, do not hide the other switches.
        return f"<invalid stored value, ignored by the server: {exc}>"


def _check_name(name: str) -> None:
    try:
        switch(name)
    except KillSwitchError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc


@click.group("killswitches")
def killswitches() -> None:
    """List, pull and push kill-switches (drop or skip matching events at a stage)."""


@killswitches.command("list")
@click.pass_context
def killswitches_list(ctx: click.Context) -> None:
    """Show every kill-switch, where it acts, its fields and its current value."""
    _, store = _open_store(ctx)
    with store:
        raw = _stored(store)
    for name, spec in SWITCHES.items():
        click.echo(f"{name} ({spec.stage}): {spec.doc}")
        click.echo(f"  fields: {', '.join(spec.fields)}")
        click.echo(f"  {_describe_stored(name, raw)}")
    for name in sorted(set(raw) - set(SWITCHES)):
        click.echo(f"{name}: unknown kill-switch in the store (ignored)")


@killswitches.command("pull")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.pass_context
def killswitches_pull(ctx: click.Context, name: str, file: Path) -> None:
    """Write NAME's current value to FILE, with comments explaining its fields and syntax."""
    _check_name(name)
    _, store = _open_store(ctx)
    with store:
        raw = _stored(store)
    try:
        conditions = validate(name, raw.get(name, []))
    except KillSwitchError as exc:
        raise click.ClickException(f"the stored value is invalid, fix it with push: {exc}") from exc
    try:
        file.write_text(render_file(name, conditions), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {file}: {exc}") from exc
    click.echo(f"wrote {name} to {file}: {describe(conditions, SWITCHES[name].action)}")


@killswitches.command("push")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.pass_context
def killswitches_push(ctx: click.Context, name: str, file: Path, yes: bool) -> None:
    """Validate FILE, show NAME's value before and after, and store it once confirmed."""
    _check_name(name)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {file}: {exc}") from exc
    try:
        raw = parse_file(text, str(file))
        after = validate(name, raw)
    except KillSwitchError as exc:
        raise click.ClickException(str(exc)) from exc
    for index, condition in enumerate(raw, 1):
        if all(value is None for value in condition.values()):
            # Sentry's rule: a condition without a non-null field matches nothing, so it is left out.
            click.echo(f"Note: condition {index} has no non-null field; it matches nothing and is left out.")
    spec = SWITCHES[name]
    config, store = _open_store(ctx)
    with store:
        stored = _stored(store)
        before = _describe_stored(name, stored)
        try:
            unchanged = name in stored and validate(name, stored[name]) == after
        except KillSwitchError:
            unchanged = False
        if unchanged or (name not in stored and not after):
            click.echo("No changes")
            return
        click.echo("Before:")
        click.echo(before)
        click.echo("After:")
        click.echo(describe(after, spec.action))
        if not yes:
            click.confirm("Should the changes be applied?", default=False, abort=True)
        try:
            store.set_killswitch(name, to_json(after))
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    _publish_change(ctx, config, TOPIC_KILLSWITCHES)
    click.echo("Applied; a running server follows within a second.")
