"""``minisentry tokens create|list|revoke``: API tokens for ``/api/0/`` with Sentry's scopes.

``create`` prints the new token once; the store keeps only its SHA-256 (``api_auth.py``), so a
lost token cannot be shown again: revoke it and create another. ``list`` never shows tokens.
Revoking takes effect on the next request (each request looks its token up in the store).
"""

from __future__ import annotations

import json

import click

from .api_auth import SCOPES, hash_token, new_token, parse_scopes
from .errors import MinisentryError

__all__ = ["tokens"]


def _token_store(ctx: click.Context):
    from .cli import _open_store  # late: cli.py imports this module at its end

    _, store = _open_store(ctx)
    if not hasattr(store, "create_api_token"):
        store.close()
        raise click.ClickException("this storage backend keeps no API tokens")
    return store


@click.group()
def tokens() -> None:
    """API tokens (Authorization: Bearer ...) for /api/0/."""


@tokens.command("create")
@click.option("--name", required=True, help="A unique name, to list and revoke the token by.")
@click.option("--scopes", required=True,
              help="Comma-separated scopes, e.g. project:read,event:read,event:write (org:read for stats_v2). "
                   f"Known: {', '.join(SCOPES)}.")
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scopes: str) -> None:
    """Create a token and print it (once: only its hash is stored)."""
    name = name.strip()
    if not name or len(name) > 100 or any(not c.isprintable() for c in name):
        raise click.BadParameter("the name must be 1 to 100 printable characters", param_hint="--name")
    try:
        wanted = parse_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from exc
    token = new_token()
    with _token_store(ctx) as store:
        try:
            store.create_api_token(name, hash_token(token), wanted)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"created token {name!r} with scopes {', '.join(wanted)}; it is shown only now:", err=True)
    click.echo(token)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens: name, scopes, created, last used (never the tokens themselves)."""
    from .cli import _iso

    with _token_store(ctx) as store:
        rows = store.list_api_tokens()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no tokens (minisentry tokens create --name NAME --scopes ...)")
        return
    click.echo(f"{'NAME':<24} {'CREATED':<21} {'LAST USED':<21} SCOPES")
    for row in rows:
        click.echo(f"{row['name']:<24} {_iso(row['created']):<21} {_iso(row['last_used']) or 'never':<21} "
                   f"{','.join(row['scopes'])}")


@tokens.command("revoke")
@click.argument("name")
@click.pass_context
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Delete the token NAME; requests with it are refused from now on."""
    with _token_store(ctx) as store:
        try:
            store.revoke_api_token(name)
        except MinisentryError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked token {name!r}")

