"""`golive keys` and `golive tokens sign` (control plane): signing keys and playback tokens.

`keys create` prints the private key once (or writes it to a file readable only by you);
the database keeps the public half. `tokens sign` mints a playback token offline from
that private key, as an application's backend would.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import echo_json, json_option, table, when

MAX_PRIVATE_KEY_BYTES = 64 * 1024
MAX_EXPIRES = 10 * 365 * 24 * 3600


@click.group()
def keys() -> None:
    """Signing keys for signed playback (tokens are JWTs with the key's id as kid)."""


@keys.command("create")
@click.option("--algorithm", type=click.Choice(["RS256", "ES256"]), default="RS256",
              show_default=True)
@click.option("--private-key-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the private key to this new file (mode 600) instead of printing it.")
@json_option
@click.pass_context
def keys_create(ctx: click.Context, algorithm: str, private_key_out: Path | None,
                as_json: bool) -> None:
    """Create a signing key; its private key is shown only this once."""
    if private_key_out is not None and private_key_out.exists():
        raise click.ClickException(f"{private_key_out} exists; golive does not overwrite keys")
    record, private_pem = with_store(command_settings(ctx),
                                     lambda s: s.create_signing_key(algorithm))
    if private_key_out is not None:
        fd = os.open(private_key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(private_pem)
    if as_json:
        shown = {"id": record.id, "algorithm": record.algorithm,
                 "created_at": record.created_at.isoformat(), "public_key": record.public_key}
        if private_key_out is None:
            shown["private_key"] = private_pem
        else:
            shown["private_key_file"] = str(private_key_out)
        echo_json(shown)
        return
    click.echo(f"Created {record.algorithm} signing key {record.id}.")
    if private_key_out is not None:
        click.echo(f"Private key written to {private_key_out} (golive keeps no copy).")
    else:
        click.echo("The private key is shown only now (golive keeps no copy):\n")
        click.echo(private_pem)
    click.echo(f"Sign a token: golive tokens sign --key-id {record.id} --private-key FILE "
               "--playback-id PLAYBACK_ID")


@keys.command("list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """List signing keys (their public halves)."""
    records = with_store(command_settings(ctx), lambda s: s.list_signing_keys())
    if as_json:
        echo_json([{"id": r.id, "algorithm": r.algorithm, "created_at": r.created_at.isoformat(),
                    "public_key": r.public_key} for r in records])
        return
    if not records:
        click.echo("No signing keys yet. Create one: golive keys create")
        return
    click.echo(table(["id", "algorithm", "created"],
                     [(r.id, r.algorithm, when(r.created_at)) for r in records]))


@keys.command("delete")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_delete(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Delete a signing key; every token it signed stops working within seconds."""
    if not with_store(command_settings(ctx), lambda s: s.delete_signing_key(key_id)):
        raise click.ClickException(f"no signing key with id {key_id!r}")
    if as_json:
        echo_json({"deleted": key_id})
    else:
        click.echo(f"Deleted signing key {key_id}.")


@click.command("sign")
@click.option("--playback-id", required=True, help="The signed playback id (the token's sub).")
@click.option("--key-id", required=True, help="The signing key's id (the token's kid).")
@click.option("--private-key", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM file with the key's private half.")
@click.option("--aud", type=click.Choice(["v", "t", "c"]), default="v", show_default=True,
              help="v: playback, t: thumbnail, c: chat.")
@click.option("--expires", type=click.IntRange(1, MAX_EXPIRES), default=3600,
              show_default=True, help="Seconds until the token expires.")
@click.option("--not-before", type=int, help="Unix time before which the token is not valid.")
@json_option
def tokens_sign(playback_id: str, key_id: str, private_key: Path, aud: str, expires: int,
                not_before: int | None, as_json: bool) -> None:
    """Mint a playback token (a JWT) offline from a signing key's private half."""
    from golive.delivery import Audience, mint_playback_token

    if private_key.stat().st_size > MAX_PRIVATE_KEY_BYTES:
        raise click.ClickException(f"{private_key} is too large to be a private key")
    audience: Audience = "v" if aud == "v" else "t" if aud == "t" else "c"
    try:
        token = mint_playback_token(private_key.read_text(), key_id=key_id,
                                    playback_id=playback_id, audience=audience,
                                    expires_in=expires, not_before=not_before)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"cannot sign with {private_key}: {exc}") from None
    if as_json:
        echo_json({"token": token, "playback_id": playback_id, "key_id": key_id, "aud": aud,
                   "expires_in": expires})
    else:
        click.echo(token)
