"""`golive serve` (control plane): run a node, with one flag per setting of the model.

The flags are generated from `Settings.model_fields` (name, type, description,
default), so a new setting is a new flag without touching this file. A flag counts
only when it is on the command line; otherwise the GOLIVE_* environment, then
golive.toml, then the model's default decide: flags > environment > file > defaults.
Before the node starts, settings it must not run with are refused with a line that
says what to fix (exit code 2), never a traceback.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import click
from click.core import ParameterSource
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from golive.cli.config import build_settings, refuse
from golive.settings import Settings, SettingsProblem

F = TypeVar("F", bound=Callable[..., Any])


def _or_empty(scalar: click.ParamType[Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An optional setting's converter: '' sets it empty (None), e.g. `--srt-port ''`."""

    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == "":
            return None
        return scalar.convert(value, param, ctx)

    return convert


_SCALARS: dict[type, click.ParamType[Any]] = {
    str: click.STRING,
    int: click.INT,
    float: click.FLOAT,
    Path: click.Path(path_type=Path),
    SecretStr: click.STRING,
}


def _optional_inner(annotation: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None was allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _shown_default(field: FieldInfo) -> str:
    """The `[default: ...]` note, written as golive.toml and GOLIVE_* would spell the value."""
    default = field.get_default(call_default_factory=True)
    if default is None or default == []:
        return ""  # the description says what empty means
    if isinstance(default, bool):
        shown = "true" if default else "false"
    else:
        shown = str(default) or "empty"
    # Written by hand: click's own note wraps text defaults in parentheses.
    return f"  [default: {shown}]"


def setting_option(name: str, field: FieldInfo) -> Callable[[F], F]:
    """The `--name` option of one setting; unknown field types fail at import, loudly."""
    flag = "--" + name.replace("_", "-")
    help_text = field.description or name
    annotation, optional = _optional_inner(field.annotation)
    if annotation is SecretStr:
        help_text += (
            f" Prefer GOLIVE_{name.upper()}: a command line is visible to other users."
        )
    if annotation is bool:
        negative = "--no-" + name.replace("_", "-")
        return click.option(
            f"{flag}/{negative}", name, default=None, help=help_text + _shown_default(field)
        )
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        return click.option(
            flag, name, multiple=True, metavar="TEXT", help=help_text + " Repeat for several."
        )
    scalar = _SCALARS.get(annotation)
    if scalar is None:
        raise TypeError(f"setting {name}: no serve flag for type {field.annotation!r}")
    if optional:
        # Converted in the callback, so that '' can mean "empty" for a number or a path.
        return click.option(
            flag,
            name,
            metavar=scalar.name.upper(),
            callback=_or_empty(scalar),
            default=None,
            help=help_text + " '' sets it empty." + _shown_default(field),
        )
    return click.option(
        flag, name, type=scalar, default=None, help=help_text + _shown_default(field)
    )


def settings_options(command: F) -> F:
    """Decorate `command` with one option per settings field, in the model's order."""
    for name, field in reversed(Settings.model_fields.items()):
        command = setting_option(name, field)(command)
    return command


def given_settings(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The settings flags actually on the command line (the rest must not hide env and file)."""
    given: dict[str, Any] = {}
    for name in Settings.model_fields:
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            value = values[name]
            given[name] = list(value) if isinstance(value, tuple) else value
    return given


@click.command()
@click.option(
    "--config",
    "serve_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: ./golive.toml, or $GOLIVE_CONFIG).",
)
@settings_options
@click.pass_context
def serve(ctx: click.Context, /, serve_config: Path | None, **values: Any) -> None:
    """Run a golive node until interrupted.

    Every setting has a flag; a flag beats GOLIVE_* environment variables, which beat
    golive.toml, which beats the defaults shown. `golive config sample` prints a
    golive.toml with all of them.

    Once started, the node moves its start-up heap out of Python's garbage
    collections (gc.freeze; logged as heap_frozen_objects), which shortens the full
    collections that otherwise stall a busy node's chat.
    """
    obj = ctx.find_root().ensure_object(dict)
    given = given_settings(ctx, values)
    if "data_dir" not in given and obj.get("data_dir") is not None:
        given["data_dir"] = obj["data_dir"]  # `golive --data-dir D serve`
    settings = build_settings(serve_config or obj.get("config"), **given)
    try:
        settings.check_admin_token()
        settings.check_tls()
        settings.prepare_data_dir()
    except SettingsProblem as problem:
        raise refuse(problem) from None
    from golive.app import run_server

    try:
        run_server(settings)
    except SettingsProblem as problem:  # found while starting: an address it cannot listen on
        raise refuse(problem) from None

