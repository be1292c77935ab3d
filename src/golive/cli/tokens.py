"""`golive tokens` (control plane): create, list and revoke API tokens in the database.

A token's secret is printed once, at creation; the database keeps only its hash.
"""

from __future__ import annotations

from typing import Any

import click
from pydantic import BaseModel

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import echo_json, json_option, table, when


@click.group()
def tokens() -> None:
    """Create and revoke API tokens."""


def _token_json(record: Any, secret: str | None = None) -> BaseModel:
    from golive.api import token_out

    return token_out(record, secret)


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--scope", type=click.Choice(["admin", "read"]), default="admin", show_default=True)
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scope: str, as_json: bool) -> None:
    """Create an API token and print it (shown only this once)."""
    settings = command_settings(ctx)
    record, secret = with_store(settings, lambda s: s.create_api_token(name=name, scope=scope))
    if as_json:
        echo_json(_token_json(record, secret))
        return
    click.echo(f"Created {record.scope} API token {record.id} ({record.name}).")
    click.echo("The token is shown only now; use it as `Authorization: Bearer TOKEN`:\n")
    click.echo(f"  {secret}")


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List API tokens (never the tokens themselves)."""
    records = with_store(command_settings(ctx), lambda s: s.list_api_tokens())
    if as_json:
        echo_json([_token_json(r) for r in records])
        return
    if not records:
        click.echo("No API tokens yet. Create one: golive tokens create --name admin")
        return
    rows = [
        (
            r.id,
            r.name,
            r.scope,
            f"{r.token_prefix}...",
            when(r.created_at),
            when(r.last_used_at),
            when(r.revoked_at),
        )
        for r in records
    ]
    headers = ["id", "name", "scope", "prefix", "created", "last used", "revoked"]
    click.echo(table(headers, rows))


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke an API token; requests using it get 401 from now on."""
    if not with_store(command_settings(ctx), lambda s: s.revoke_api_token(token_id)):
        raise click.ClickException(f"no API token with id {token_id!r}")
    if as_json:
        echo_json({"revoked": token_id})
    else:
        click.echo(f"Revoked API token {token_id}.")
