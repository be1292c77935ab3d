"""`golive serve` refuses settings it must not run with: one message saying what to fix,
exit code 2, no traceback, and no node started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from golive.cli import cli
from golive.settings import Settings

RECIPE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(f"GOLIVE_{name.upper()}", raising=False)
    monkeypatch.setenv("GOLIVE_CONFIG", str(tmp_path / "none.toml"))
    seen: list[Settings] = []
    fake = types.ModuleType("golive.app")
    fake.run_server = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "golive.app", fake)
    return seen


def refused(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: "), result.output
    return result.output


def serve_in_a_process(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`golive serve` in a process of its own with `settings` (by field name), a data dir,
    no settings file and every listener on 127.0.0.1 on a free port; the timeout only
    guards against a node that starts anyway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    env.update(GOLIVE_DATA_DIR=str(tmp_path / "data"), GOLIVE_CONFIG=str(tmp_path / "none.toml"),
               GOLIVE_HOST="127.0.0.1", GOLIVE_HTTP_PORT="0", GOLIVE_RTMP_PORT="0",
               GOLIVE_SRT_PORT="0")
    env.update({f"GOLIVE_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run([sys.executable, "-m", "golive", "serve"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_a_short_admin_token_is_refused_from_a_real_process(tmp_path: Path) -> None:
    proc = serve_in_a_process(tmp_path, admin_token="hunter2-hunter2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "GOLIVE_ADMIN_TOKEN" in proc.stderr and "15 characters" in proc.stderr
    assert RECIPE in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr  # the secret itself is never echoed


def test_admin_token_length_boundary(started: list[Settings], tmp_path: Path) -> None:
    out = refused(CliRunner().invoke(cli, ["serve", "--admin-token", "a" * 31]))
    assert "at least 32" in out and RECIPE in out
    assert started == []
    for token in ("a" * 32, ""):  # long enough, or no admin token at all
        result = CliRunner().invoke(cli, ["serve", "--admin-token", token])
        assert result.exit_code == 0, result.output
    assert len(started) == 2


def test_a_data_dir_that_cannot_be_created_names_path_and_reason(
    started: list[Settings], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    wanted = tmp_path / "a-file" / "data"
    out = refused(CliRunner().invoke(cli, ["serve", "--data-dir", str(wanted)]))
    assert str(wanted) in out and "cannot be created: Not a directory" in out
    assert "GOLIVE_DATA_DIR" in out
    out = refused(CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path / "a-file")]))
    assert str(tmp_path / "a-file") in out and "is a file" in out
    assert started == []


def _unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores mode bits)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for candidate in (locked, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no directory here refuses writes to this user")


def test_an_unwritable_data_dir_names_path_and_reason(
    started: list[Settings], tmp_path: Path
) -> None:
    directory = _unwritable_directory(tmp_path)
    out = refused(CliRunner().invoke(cli, ["serve", "--data-dir", str(directory)]))
    assert f"data_dir {directory} is not writable:" in out
    assert "Permission denied" in out or "Read-only file system" in out
    assert started == []


def test_management_commands_explain_an_unusable_data_dir_too(
    started: list[Settings], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    wanted = tmp_path / "a-file" / "data"
    out = refused(CliRunner().invoke(cli, ["--data-dir", str(wanted), "streams", "list"]))
    assert str(wanted) in out and "Not a directory" in out


def test_half_a_certificate_or_a_wrong_key_is_refused(started: list[Settings],
                                                      tmp_path: Path) -> None:
    from tests.tlscerts import make_server_certificate

    good = make_server_certificate(tmp_path / "good")
    other = make_server_certificate(tmp_path / "other")
    out = refused(CliRunner().invoke(cli, ["serve", "--tls-cert", str(good.cert)]))
    assert "tls_cert is set but tls_key is not" in out and "GOLIVE_TLS_KEY" in out
    out = refused(CliRunner().invoke(cli, ["serve", "--tls-cert", str(good.cert),
                                           "--tls-key", str(other.key)]))
    assert "key belongs to the first certificate" in out
    assert started == []
    result = CliRunner().invoke(cli, ["serve", "--tls-cert", str(good.cert),
                                      "--tls-key", str(good.key)])
    assert result.exit_code == 0, result.output
    assert started[0].http_scheme == "https"
    # RTMPS needs the same pair.
    out = refused(CliRunner().invoke(cli, ["serve", "--rtmps-port", "1936"]))
    assert "rtmps_port is set but tls_cert and tls_key are not" in out
    assert len(started) == 1


@pytest.mark.parametrize(("what", "setting", "kind"), [
    ("HTTP", "http_port", socket.SOCK_STREAM),
    ("RTMP", "rtmp_port", socket.SOCK_STREAM),
    ("SRT", "srt_port", socket.SOCK_DGRAM),
])
def test_an_address_another_program_holds_is_named_with_its_setting(
        tmp_path: Path, what: str, setting: str, kind: socket.SocketKind) -> None:
    """A port already taken (the commonest first-run problem: another server on 8080)
    stops the node with the address and the setting to change, not a traceback."""
    with socket.socket(socket.AF_INET, kind) as held:
        held.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            held.listen()
        port = held.getsockname()[1]
        proc = serve_in_a_process(tmp_path, **{setting: str(port)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"Error: cannot listen for {what} on 127.0.0.1:{port}: Address already in use"
            in proc.stderr), proc.stderr
    assert f"set {setting} (GOLIVE_{setting.upper()}) to another" in proc.stderr
