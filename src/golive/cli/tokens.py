"""`golive tokens` (control plane): create, list and revoke API tokens in the database.

A token's secret is printed once, at creation; the database keeps only its hash.
Creating and revoking are written to the audit log as the command line's doing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from pydantic import BaseModel

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import cli_actor, echo_json, json_option, table, when
from golive.store import TOKEN_SCOPES


@click.group()
def tokens() -> None:
    """Create and revoke API tokens."""


def _token_json(record: Any, secret: str | None = None) -> BaseModel:
    from golive.api import token_out

    return token_out(record, secret)


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--scope", "scopes", type=click.Choice(TOKEN_SCOPES), multiple=True,
              help="What the token may do (repeat for several); default: admin.")
@click.option("--expires-in", type=click.IntRange(min=60), default=None,
              help="Seconds until the token stops working; default: never.")
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scopes: tuple[str, ...],
                  expires_in: int | None, as_json: bool) -> None:
    """Create an API token and print it (shown only this once)."""
    from golive.core import utcnow

    settings = command_settings(ctx)
    expires_at = None if expires_in is None else utcnow() + timedelta(seconds=expires_in)

    async def create(store: Any) -> Any:
        record, secret = await store.create_api_token(
            name=name, scopes=scopes or ("admin",), expires_at=expires_at)
        await store.record_audit(cli_actor(), "api_token.create", "api_token", record.id,
                                 {"name": record.name, "scopes": list(record.scopes),
                                  "expires_at": record.expires_at})
        return record, secret

    record, secret = with_store(settings, create)
    if as_json:
        echo_json(_token_json(record, secret))
        return
    click.echo(f"Created API token {record.id} ({record.name}) with scopes "
               f"{' '.join(record.scopes)}.")
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
            " ".join(r.scopes),
            f"{r.token_prefix}...",
            when(r.created_at),
            when(r.expires_at),
            when(r.last_used_at),
            when(r.revoked_at),
        )
        for r in records
    ]
    headers = ["id", "name", "scopes", "prefix", "created", "expires", "last used", "revoked"]
    click.echo(table(headers, rows))


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke an API token; requests using it get 401 from now on."""
    async def revoke(store: Any) -> bool:
        if not await store.revoke_api_token(token_id):
            return False
        await store.record_audit(cli_actor(), "api_token.revoke", "api_token", token_id)
        return True

    if not with_store(command_settings(ctx), revoke):
        raise click.ClickException(f"no API token with id {token_id!r}")
    if as_json:
        echo_json({"revoked": token_id})
    else:
        click.echo(f"Revoked API token {token_id}.")
