"""`golive report` (control plane): the post-event report of one finished broadcast.

Reads the same database a running server uses and writes report.json and a
self-contained report.html into `--out`; `--tickets` places support tickets from a
CSV (time, channel, text) on the timeline. Bad ticket rows are listed and skipped; a
tickets file that cannot be read at all stops the command with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.store import Store


def _read_tickets(path: Path) -> bytes:
    from golive.health import MAX_TICKETS_BYTES

    try:
        with path.open("rb") as f:
            data = f.read(MAX_TICKETS_BYTES + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read tickets file {path}: {exc.strerror}") from None
    if len(data) > MAX_TICKETS_BYTES:
        raise click.ClickException(
            f"tickets file {path} is larger than {MAX_TICKETS_BYTES} bytes")
    return data


@click.command()
@click.argument("broadcast_id")
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write report.json and report.html into (created).")
@click.option("--tickets", "tickets_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Support tickets CSV with the columns time (ISO 8601), channel, text.")
@click.pass_context
def report(ctx: click.Context, broadcast_id: str, out_dir: Path,
           tickets_path: Path | None) -> None:
    """Write the post-event report of a finished broadcast (JSON and one HTML page)."""
    from golive.health import Ticket, TicketsError, build_report, parse_tickets, render_html

    settings = command_settings(ctx)
    tickets: list[Ticket] = []
    if tickets_path is not None:
        try:
            tickets, problems = parse_tickets(_read_tickets(tickets_path))
        except TicketsError as exc:
            raise click.ClickException(f"{tickets_path}: {exc}") from None
        for problem in problems:
            click.echo(f"tickets {tickets_path.name}: skipped {problem}", err=True)

    async def action(store: Store) -> dict[str, Any]:
        return await build_report(store, broadcast_id, tickets)

    data = with_store(settings, action)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
        (out_dir / "report.html").write_text(render_html(data))
    except OSError as exc:
        raise click.ClickException(f"cannot write the report into {out_dir}: {exc}") from None
    missed = [s["metric"] for s in data["slos"] if s["met"] is False]
    click.echo(f"Report of {broadcast_id} written to {out_dir}/report.html and report.json: "
               f"{len(data['alerts'])} alerts, {data['tickets']['placed']} tickets placed, "
               f"SLOs missed: {', '.join(missed) or 'none'}.")
