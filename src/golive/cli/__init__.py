"""The `golive` command line (control plane): run a node, manage streams, API tokens and
signing keys, mint playback tokens, print a config.

`serve` runs a node; `streams`, `tokens` and `webhooks` talk to the database directly through
`Store` (the same file a running server uses); `config sample` prints a golive.toml.
Human-readable tables by default, `--json` for scripts. Errors print one clear line
and exit 1 (or 2 for bad usage or configuration), never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from golive import __version__
from golive.cli.assets import assets
from golive.cli.config import config
from golive.cli.keys import keys, tokens_sign
from golive.cli.preflight import preflight
from golive.cli.profiles import profiles
from golive.cli.report import report
from golive.cli.serve import serve
from golive.cli.streams import streams
from golive.cli.tokens import tokens
from golive.cli.webhooks import webhooks

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="golive")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: ./golive.toml, or $GOLIVE_CONFIG).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: $GOLIVE_DATA_DIR or ./golive-data).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, data_dir: Path | None) -> None:
    """golive: self-hosted live streaming (RTMP/SRT/WHIP in, LL-HLS and WebRTC out)."""
    ctx.ensure_object(dict).update(config=config, data_dir=data_dir)


cli.add_command(serve)
cli.add_command(streams)
cli.add_command(tokens)
cli.add_command(webhooks)
cli.add_command(keys)
tokens.add_command(tokens_sign)
cli.add_command(config)
cli.add_command(assets)
cli.add_command(profiles)
cli.add_command(preflight)
cli.add_command(report)


def main() -> None:
    """Console-script entry point (`golive`)."""
    cli.main(prog_name="golive")
