"""``minisentry users create EMAIL``: add a web UI user to the store.

The password is read from stdin with ``--password-stdin`` (its first line) or prompted for twice
without echo; it is stored only as a salted scrypt hash (``web/passwords.py``).
"""

from __future__ import annotations

import sys

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
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    _, store = _open_store(ctx)
    with store:
        if not hasattr(store, "create_user"):
            raise click.ClickException("this storage backend keeps no web UI users")
        try:
            user_id = store.create_user(email, hash_password(password))
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"created user {user_id} ({email})")
