"""`golive serve` has one flag per setting, generated from the model, and flags win.

Precedence: flags > GOLIVE_* environment > golive.toml > defaults.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from tests.tlscerts import make_server_certificate

from golive.cli import cli
from golive.cli.serve import serve
from golive.settings import Settings


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings `serve` would start a node with (golive.app is replaced, nothing runs)."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(f"GOLIVE_{name.upper()}", raising=False)
    monkeypatch.setenv("GOLIVE_CONFIG", str(tmp_path / "none.toml"))
    seen: list[Settings] = []
    fake = types.ModuleType("golive.app")
    fake.run_server = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "golive.app", fake)
    return seen


def test_every_setting_has_a_flag_with_its_description_and_default() -> None:
    options = {p.name: p for p in serve.params}
    assert set(Settings.model_fields) <= set(options)
    assert set(options) - set(Settings.model_fields) == {"serve_config"}
    out = CliRunner().invoke(cli, ["serve", "--help"]).output
    ctx = click.Context(serve, info_name="serve")
    shown: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        assert f"  {flag(name)} " in out, f"{flag(name)} missing from serve --help"
        record = options[name].get_help_record(ctx)
        assert record is not None
        names, help_text = record
        assert names.startswith(flag(name))
        assert field.description and help_text.startswith(field.description), name
        shown[name] = help_text
    assert shown["http_port"].endswith("[default: 8080]")
    assert shown["data_dir"].endswith("[default: golive-data]")
    assert shown["transcode"].endswith("[default: true]")
    assert shown["public_host"].endswith("[default: empty]")


def _other_value(name: str, field: FieldInfo, tmp_path: Path) -> tuple[list[str], Any]:
    """A command line setting `name` to a valid non-default value, and that value."""
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return ([flag(name) if not default else "--no-" + flag(name)[2:]], not default)
    if field.annotation in (list[str], list[str] | None):
        return ([flag(name), "127.0.0.1", flag(name), "127.0.0.2"], ["127.0.0.1", "127.0.0.2"])
    if field.annotation in (Path, Path | None):
        return ([flag(name), str(tmp_path / name)], tmp_path / name)
    if field.annotation in (SecretStr, SecretStr | None):
        secret = "s" * 40
        return ([flag(name), secret], SecretStr(secret))
    number = default if isinstance(default, int | float) else 1
    candidates = [number + 1, number - 1, number * 2, number / 2, "debug", "json", "x",
                  "s3://golive-bucket/recordings",
                  "https://hooks.example/access"]
    for value in candidates:
        if value == default:
            continue
        values: dict[str, Any] = {name: value}
        try:
            settings = Settings(**values)
        except ValidationError:
            continue
        return ([flag(name), str(value)], settings.model_dump()[name])
    raise AssertionError(f"no test value for setting {name}")


def test_each_flag_reaches_its_setting(started: list[Settings], tmp_path: Path) -> None:
    args: list[str] = []
    expected: dict[str, Any] = {}
    # tls_cert and tls_key are checked at start (readable, a matching pair): real ones.
    tls = make_server_certificate(tmp_path / "tls")
    real = {"tls_cert": tls.cert, "tls_key": tls.key}
    for name, field in Settings.model_fields.items():
        if name in real:
            argv, value = [flag(name), str(real[name])], real[name]
        else:
            argv, value = _other_value(name, field, tmp_path)
        args += argv
        expected[name] = value
    result = CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [settings] = started
    got = settings.model_dump()
    for name, value in expected.items():
        if isinstance(value, SecretStr):
            assert got[name].get_secret_value() == value.get_secret_value(), name
        else:
            assert got[name] == value, name


def test_flags_beat_environment_beat_file_beat_defaults(
    started: list[Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def start(*args: str) -> Settings:
        result = CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return started.pop()

    assert start().http_port == 8080
    (tmp_path / "none.toml").write_text("http_port = 8001\nrtmp_port = 1001\n")
    assert start().http_port == 8001
    monkeypatch.setenv("GOLIVE_HTTP_PORT", "8002")
    settings = start()
    assert (settings.http_port, settings.rtmp_port) == (8002, 1001)
    settings = start("--http-port", "8003")
    assert (settings.http_port, settings.rtmp_port) == (8003, 1001)
    # An untouched flag does not reset what the environment or the file said.
    monkeypatch.setenv("GOLIVE_TRANSCODE", "false")
    assert start().transcode is False
    assert start("--transcode").transcode is True


def test_an_empty_flag_empties_an_optional_setting(
    started: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOLIVE_SRT_PORT", "9100")
    result = CliRunner().invoke(cli, ["serve", "--srt-port", ""], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert started.pop().srt_port is None


def test_a_bad_flag_value_names_the_setting(started: list[Settings]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--srt-latency-ms", "5"])
    assert result.exit_code == 2
    assert "srt_latency_ms" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["serve", "--webrtc-host-addresses", "not-an-ip"])
    assert result.exit_code == 2 and "not-an-ip" in result.output
    assert started == []
