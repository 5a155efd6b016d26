"""``minisentry users create|list|delete|set-password``: the web UI's users in the store.

The password is read from stdin with ``--password-stdin`` (its first line) or prompted for twice
without echo; it is stored only as a salted scrypt hash (``web/passwords.py``).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from .errors import MinisentryError
from .web.passwords import MIN_PASSWORD_LENGTH, hash_password

__all__ = ["users"]


@click.group()
def users() -> None:
    """Web UI users (who may sign in at /ui/)."""


@users.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def users_create(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Create a user who signs in with EMAIL and a password (prompted, or from stdin)."""
    from .cli import _open_store  # late: cli.py imports this module at its end

    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="EMAIL")
    password = _read_password(password_stdin)
    _, store = _open_store(ctx)
    with store:
        if not hasattr(store, "create_user"):
            raise click.ClickException("this storage backend keeps no web UI users")
        try:
            user_id = store.create_user(email, hash_password(password))
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"created user {user_id} ({email})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users: id, email, when created and how many sessions are signed in."""
    from .cli import _open_store

    _, store = _open_store(ctx)
    with store:
        if not hasattr(store, "list_users"):
            raise click.ClickException("this storage backend keeps no web UI users")
        rows = store.list_users()
    if not rows:
        click.echo("no users; create one with: minisentry users create EMAIL")
        return
    click.echo(f"{'id':>4}  {'email':<40} {'created (UTC)':<20} sessions")
    for row in rows:
        created = datetime.fromtimestamp(row["created"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{row['id']:>4}  {row['email']:<40} {created:<20} {row['sessions']}")


@users.command("delete")
@click.argument("email")
@click.pass_context
def users_delete(ctx: click.Context, email: str) -> None:
    """Delete the user EMAIL and sign them out everywhere."""
    _change_user(ctx, lambda store: store.delete_user(email.strip().lower()))
    click.echo(f"deleted user {email.strip().lower()} and ended their sessions")


@users.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def users_set_password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Give EMAIL a new password (prompted, or from stdin); their sessions end."""
    password = _read_password(password_stdin)
    password_hash = hash_password(password)
    _change_user(ctx, lambda store: store.set_user_password(email.strip().lower(), password_hash))
    click.echo(f"changed the password of {email.strip().lower()} and ended their sessions")


def _change_user(ctx: click.Context, change) -> None:
    from .cli import _open_store

    _, store = _open_store(ctx)
    with store:
        if not hasattr(store, "delete_user"):
            raise click.ClickException("this storage backend keeps no web UI users")
        try:
            change(store)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
