"""`golive preflight STREAM` (control plane): open a preflight session on the running node,
tell the operator where to publish, wait for the verdict and print each check.

Preflight needs the node's ingest, so this talks to its API (GOLIVE_TOKEN, else the admin
token). Exit status: 0 for go, 1 for no-go or a session that failed or expired.
"""

from __future__ import annotations

import time
from typing import Any

import click

from golive.cli.config import command_settings
from golive.cli.node import node_api_url, node_token
from golive.cli.output import echo_json, json_option, table


@click.command()
@click.argument("stream_id")
@click.option("--duration", type=click.FloatRange(2, 120), default=10, show_default=True,
              help="Seconds of the real scene to publish and measure.")
@click.option("--timeout", type=click.FloatRange(10, 3600), default=600, show_default=True,
              help="Seconds to wait for the publisher and the verdict.")
@json_option
@click.pass_context
def preflight(ctx: click.Context, stream_id: str, duration: float, timeout: float,
              as_json: bool) -> None:
    """Check a stream's real scene before the event: go / no-go with every check.

    Publish to the stream's usual ingest URL with its stream key while this waits:
    nothing goes on the air.
    """
    import httpx

    settings = command_settings(ctx)
    token = node_token(settings)
    if not token:
        raise click.ClickException("set GOLIVE_TOKEN to an API token (streams:write) of the "
                                   "running node")
    base = node_api_url(settings)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            r = client.post(f"/live-streams/{stream_id}/preflight", json={"duration": duration})
            if r.status_code != 201:
                raise click.ClickException(_error(r))
            session: dict[str, Any] = r.json()["data"]
            if not as_json:
                stream = client.get(f"/live-streams/{stream_id}").json()["data"]
                click.echo(f"Preflight {session['id']} against {session['profile']}: publish "
                           f"{duration:g} s of the real scene to {stream['ingest']['rtmp']} "
                           "(or SRT, WHIP) with the stream key; it stays off the air.",
                           err=True)
            deadline = time.monotonic() + timeout
            while session["status"] not in ("done", "failed", "expired"):
                if time.monotonic() > deadline:
                    raise click.ClickException(f"no verdict after {timeout:g} s "
                                               f"(status {session['status']})")
                time.sleep(0.5)
                r = client.get(f"/live-streams/{stream_id}/preflights/{session['id']}")
                if r.status_code != 200:
                    raise click.ClickException(_error(r))
                session = r.json()["data"]
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the node at {base}: {exc}") from None
    if as_json:
        echo_json(session)
    else:
        _print(session)
    ctx.exit(0 if session.get("verdict") == "go" else 1)


def _error(response: Any) -> str:
    try:
        return "; ".join(response.json()["error"]["messages"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _print(session: dict[str, Any]) -> None:
    if session["status"] != "done":
        click.echo(f"Preflight {session['status']}: {session.get('error') or ''}")
        return
    rows = [(c["name"], c["status"].upper(), c["measured"], c["threshold"], c["fix"])
            for c in session["checks"]]
    click.echo(table(["check", "result", "measured", "threshold", "fix"], rows))
    verdict = "GO" if session["verdict"] == "go" else "NO-GO"
    click.echo(f"\n{verdict} ({session['media_seconds']:g} s measured against "
               f"{session['profile']})")
