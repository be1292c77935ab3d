"""`golive webhooks` (control plane): create, list and delete webhook endpoints, read
their delivery log and queue a redelivery, in the database.

The signing secret is printed once, at creation. A URL is checked where it points
exactly as the API checks it (`webhook_allow_private_targets`). A redelivery queued
here is picked up by a running node within its sweep (30 s). Changes are written to
the audit log as the command line's doing.
"""

from __future__ import annotations

from typing import Any

import click

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import cli_actor, echo_json, json_option, table, when


@click.group()
def webhooks() -> None:
    """Create webhook endpoints and inspect their deliveries."""


@webhooks.command("create")
@click.option("--url", required=True, help="Where events are POSTed (http:// or https://).")
@click.option("--event", "events", multiple=True,
              help="An event type (live_stream.active) or family (live_stream.*); repeat for "
                   "several; default: every event.")
@click.option("--disabled", is_flag=True, help="Create it switched off.")
@json_option
@click.pass_context
def webhooks_create(ctx: click.Context, url: str, events: tuple[str, ...], disabled: bool,
                    as_json: bool) -> None:
    """Create a webhook endpoint and print its signing secret (shown only this once)."""
    from golive.api import webhook_out
    from golive.store import check_event_types
    from golive.webhooks import TargetRefused, resolve_target

    settings = command_settings(ctx)

    async def create(store: Any) -> Any:
        types = check_event_types(list(events))
        try:
            await resolve_target(url, allow_private=settings.webhook_allow_private_targets)
        except TargetRefused as refused:
            raise click.ClickException(f"url: {refused}") from None
        record, secret = await store.create_webhook(url=url, event_types=types,
                                                    enabled=not disabled)
        await store.record_audit(cli_actor(), "webhook.create", "webhook", record.id,
                                 {"url": url, "event_types": list(types),
                                  "enabled": not disabled})
        return record, secret

    record, secret = with_store(settings, create)
    if as_json:
        echo_json(webhook_out(record, secret))
        return
    click.echo(f"Created webhook {record.id} -> {record.url}")
    click.echo("Its signing secret is shown only now (verify `golive-signature` with it):\n")
    click.echo(f"  {secret}")


@webhooks.command("list")
@json_option
@click.pass_context
def webhooks_list(ctx: click.Context, as_json: bool) -> None:
    """List webhook endpoints (never their secrets)."""
    from golive.api import webhook_out

    records = with_store(command_settings(ctx), lambda s: s.list_webhooks())
    if as_json:
        echo_json([webhook_out(r) for r in records])
        return
    if not records:
        click.echo("No webhooks yet. Create one: golive webhooks create --url URL")
        return
    rows = [(r.id, r.url, " ".join(r.event_types) or "(all)", "yes" if r.enabled else "no",
             when(r.created_at)) for r in records]
    click.echo(table(["id", "url", "events", "enabled", "created"], rows))


@webhooks.command("delete")
@click.argument("webhook_id")
@json_option
@click.pass_context
def webhooks_delete(ctx: click.Context, webhook_id: str, as_json: bool) -> None:
    """Delete a webhook endpoint with its pending deliveries and log."""
    async def delete(store: Any) -> bool:
        if not await store.delete_webhook(webhook_id):
            return False
        await store.record_audit(cli_actor(), "webhook.delete", "webhook", webhook_id)
        return True

    if not with_store(command_settings(ctx), delete):
        raise click.ClickException(f"no webhook with id {webhook_id!r}")
    if as_json:
        echo_json({"deleted": webhook_id})
    else:
        click.echo(f"Deleted webhook {webhook_id}.")


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]))
@json_option
@click.pass_context
def webhooks_deliveries(ctx: click.Context, webhook_id: str, limit: int, state: str | None,
                        as_json: bool) -> None:
    """A webhook's delivery log, newest first."""
    from golive.api import delivery_out

    async def read(store: Any) -> Any:
        if await store.get_webhook(webhook_id) is None:
            raise click.ClickException(f"no webhook with id {webhook_id!r}")
        return await store.list_deliveries(webhook_id, limit=limit, state=state)

    records = with_store(command_settings(ctx), read)
    if as_json:
        echo_json([delivery_out(r) for r in records])
        return
    rows = [(r.id, r.event_type, r.state, r.attempts, r.response_status,
             None if r.latency_ms is None else f"{r.latency_ms:.0f} ms",
             when(r.last_attempt_at), r.error) for r in records]
    click.echo(table(["id", "event", "state", "attempts", "status", "latency", "last attempt",
                      "error"], rows))


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id", type=int)
@json_option
@click.pass_context
def webhooks_redeliver(ctx: click.Context, webhook_id: str, delivery_id: int,
                       as_json: bool) -> None:
    """Queue a delivery's event again (same event id; a running node sends it)."""
    from golive.api import delivery_out

    async def redeliver(store: Any) -> Any:
        record = await store.redeliver(webhook_id, delivery_id)
        if record is None:
            raise click.ClickException(
                f"no delivery {delivery_id} of webhook {webhook_id!r}")
        await store.record_audit(cli_actor(), "webhook.redeliver", "webhook", webhook_id,
                                 {"delivery_id": delivery_id, "new_delivery_id": record.id})
        return record

    record = with_store(command_settings(ctx), redeliver)
    if as_json:
        echo_json(delivery_out(record))
    else:
        click.echo(f"Queued delivery {record.id} (a copy of {delivery_id}).")
