"""Settings for CLI commands (control plane): built from --config/--data-dir, the
environment and golive.toml, with errors turned into one line and exit code 2; and
`golive config sample`, a golive.toml generated from the settings model.
"""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr, ValidationError

from golive import __version__
from golive.settings import Settings, SettingsProblem


class ConfigurationError(click.ClickException):
    """A setting the command cannot work with: one `Error:` line, exit code 2 (bad usage)."""

    exit_code = 2


def refuse(problem: SettingsProblem) -> ConfigurationError:
    return ConfigurationError(str(problem))


@contextlib.contextmanager
def _config_env(config: Path | None) -> Iterator[None]:
    """Point Settings at `config` (it reads GOLIVE_CONFIG) for the duration of the block."""
    if config is None:
        yield
        return
    old = os.environ.get("GOLIVE_CONFIG")
    os.environ["GOLIVE_CONFIG"] = str(config)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GOLIVE_CONFIG", None)
        else:
            os.environ["GOLIVE_CONFIG"] = old


def _settings_error(exc: ValidationError) -> click.UsageError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
    )
    return click.UsageError(f"invalid settings: {problems}")


def build_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from overrides (flags) > GOLIVE_* environment > `config` file > defaults.

    An override of None sets that setting empty (`--srt-port ''`); leave a setting
    out of `overrides` to let the environment and the file decide.
    """
    try:
        with _config_env(config):
            return Settings(**overrides)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML file
        raise click.UsageError(f"cannot read settings: {exc}") from None


def command_settings(ctx: click.Context) -> Settings:
    """The settings of a management command, from the root group's --config/--data-dir."""
    obj = ctx.find_root().ensure_object(dict)
    settings = obj.get("settings")
    if settings is None:
        data_dir = obj.get("data_dir")
        overrides = {} if data_dir is None else {"data_dir": data_dir}
        settings = build_settings(obj.get("config"), **overrides)
        obj["settings"] = settings
    assert isinstance(settings, Settings)
    return settings


# golive config ---------------------------------------------------------------------


@click.group()
def config() -> None:
    """Settings helpers."""


def _toml_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):  # e.g. the webrtc_* address lists
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def sample_config() -> str:
    """A commented golive.toml with every setting at its default value."""
    lines = [
        f"# golive.toml: settings of a golive node (golive {__version__}).",
        "# Every setting can also come from the environment as GOLIVE_<NAME> (for example",
        "# GOLIVE_HTTP_PORT=8081), which overrides this file; `golive serve` flags override both.",
        "# Values below are the defaults; settings without a default are commented out.",
    ]
    for name, field in Settings.model_fields.items():
        lines.append("")
        for para in (field.description or name).splitlines():
            lines += [f"# {line}" for line in textwrap.wrap(para, 86)]
        default = field.get_default(call_default_factory=True)
        if default is None:
            lines.append(f"# {name} =")
        else:
            lines.append(f"{name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


@config.command("sample")
def config_sample() -> None:
    """Print a sample golive.toml with every setting, its description and default."""
    click.echo(sample_config(), nl=False)
