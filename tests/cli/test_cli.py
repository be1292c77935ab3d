"""The `golive` CLI through click's CliRunner, against SQLite in tmp_path."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from golive.cli import cli
from golive.settings import Settings


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)  # no stray golive.toml from the working directory
    runner = CliRunner()
    env = {"GOLIVE_DATA_DIR": str(tmp_path / "data"), "GOLIVE_CONFIG": str(tmp_path / "none.toml")}

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_streams_lifecycle(run: Any, tmp_path: Path) -> None:
    out = ok(
        run(
            "streams",
            "create",
            "--name",
            "My show",
            "--latency-mode",
            "standard",
            "--reconnect-window",
            "30",
        )
    )
    assert "rtmp://127.0.0.1:1935/live/" in out
    assert (tmp_path / "data" / "golive.db").exists()

    created = json.loads(ok(run("streams", "create", "--name", "Second", "--json")))
    key = created["stream_key"]
    sid = created["id"]
    made_backup = created["backup_stream_key"]
    assert made_backup != key and made_backup.startswith(created["backup_stream_key_prefix"])
    assert created["ingest"]["rtmp_url"] == f"rtmp://127.0.0.1:1935/live/{key}"
    assert created["latency_mode"] == "low"
    assert f"rtmp://127.0.0.1:1935/live/{key}" not in out

    listed = ok(run("streams", "list"))
    assert "My show" in listed and "Second" in listed and sid in listed
    assert key not in listed
    listed_json = json.loads(ok(run("streams", "list", "--json")))
    assert [s["name"] for s in listed_json] == ["My show", "Second"]
    assert listed_json[0]["latency_mode"] == "standard"
    assert listed_json[0]["reconnect_window"] == 30.0

    shown = json.loads(ok(run("streams", "show", sid, "--json")))
    assert shown["id"] == sid and "stream_key" not in shown
    assert shown["stream_key_prefix"] == created["stream_key_prefix"]
    human = ok(run("streams", "show", sid))
    assert "Second" in human and key not in human

    reset = json.loads(ok(run("streams", "reset-key", sid, "--json")))
    assert reset["stream_key"] and reset["stream_key"] != key
    assert reset["backup_stream_key"] not in (made_backup, reset["stream_key"])
    human = ok(run("streams", "reset-key", sid))
    assert "rtmp://" in human and "backup key" in human and "(hidden)" not in human
    assert "backup key" in ok(run("streams", "show", sid))
    assert reset["backup_stream_key"] not in ok(run("streams", "show", sid))
    backup = json.loads(ok(run("streams", "reset-backup-key", sid, "--json")))
    assert backup["backup_stream_key"].startswith(backup["backup_stream_key_prefix"])
    human = ok(run("streams", "show", sid))
    assert backup["backup_stream_key_prefix"] in human and backup["backup_stream_key"] not in human
    assert "shown only now" in ok(run("streams", "reset-backup-key", sid))
    assert run("streams", "reset-backup-key", "ls_nope").exit_code == 1

    assert json.loads(ok(run("streams", "disable", sid, "--json")))["status"] == "disabled"
    assert "disabled" in ok(run("streams", "disable", sid))
    assert "idle" in ok(run("streams", "enable", sid))

    # Deleting asks first; declining keeps the stream.
    result = run("streams", "delete", sid, input="n\n")
    assert result.exit_code == 1
    ok(run("streams", "show", sid))
    assert "Deleted" in ok(run("streams", "delete", sid, "--yes"))
    result = run("streams", "show", sid)
    assert result.exit_code == 1
    assert "no live stream" in result.output and "Traceback" not in result.output
    assert run("streams", "delete", sid, "--yes").exit_code == 1


def test_errors_are_one_line(run: Any) -> None:
    result = run("streams", "create")
    assert result.exit_code == 2 and "--name" in result.output
    result = run("streams", "create", "--name", "")
    assert result.exit_code == 1
    assert "Error:" in result.output and "Traceback" not in result.output
    result = run("streams", "create", "--name", "x", "--reconnect-window", "5000")
    assert result.exit_code == 2
    result = run("streams", "list", "--after", "nope")
    assert result.exit_code == 1 and "nope" in result.output


def test_create_refuses_a_profile_that_names_no_profile(run: Any) -> None:
    for name in ("../../etc/passwd", "no-such-profile"):
        result = run("streams", "create", "--name", "x", "--profile", name)
        assert result.exit_code == 2, result.output
        assert "--profile" in result.output and repr(name) in result.output
    assert "No live streams yet" in ok(run("streams", "list"))
    created = json.loads(ok(run("streams", "create", "--name", "x", "--profile", "low-cpu", "--json")))
    assert created["profile"] == "low-cpu@1"


def test_dvr_window_on_create_and_update(run: Any) -> None:
    dvr = json.loads(ok(run("streams", "create", "--name", "dvr", "--recording",
                            "--dvr-window", "600", "--json")))
    assert dvr["dvr_window"] == 600
    assert re.search(r"DVR window +600 s", ok(run("streams", "show", dvr["id"])))
    refused = run("streams", "create", "--name", "x", "--dvr-window", "60")
    assert refused.exit_code == 1 and "dvr_window needs recording" in refused.output
    assert run("streams", "create", "--name", "x", "--dvr-window", "21601").exit_code == 2
    updated = json.loads(ok(run("streams", "update", dvr["id"], "--dvr-window", "0", "--json")))
    assert updated["dvr_window"] == 0
    assert re.search(r"DVR window +off", ok(run("streams", "show", dvr["id"])))


def test_webrtc_playback_on_create_and_update(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = json.loads(ok(run("streams", "create", "--name", "plain", "--json")))
    assert plain["webrtc_playback"] is False  # the server setting's default
    realtime = json.loads(ok(run("streams", "create", "--name", "rt", "--webrtc-playback",
                                 "--json")))
    assert realtime["webrtc_playback"] is True
    assert re.search(r"real-time \(WHEP\) +yes", ok(run("streams", "show", realtime["id"])))

    updated = json.loads(ok(run("streams", "update", plain["id"], "--webrtc-playback",
                                "--name", "now real-time", "--json")))
    assert (updated["webrtc_playback"], updated["name"]) == (True, "now real-time")
    assert json.loads(ok(run("streams", "update", realtime["id"], "--no-webrtc-playback",
                             "--json")))["webrtc_playback"] is False
    assert "Updated live stream" in ok(run("streams", "update", plain["id"], "--recording"))
    result = run("streams", "update", plain["id"])
    assert result.exit_code == 2 and "nothing to change" in result.output
    result = run("streams", "update", "ls_missing", "--recording")
    assert result.exit_code == 1 and "no live stream" in result.output

    # GOLIVE_WEBRTC_PLAYBACK is the default for new streams.
    monkeypatch.setenv("GOLIVE_WEBRTC_PLAYBACK", "true")
    assert json.loads(ok(run("streams", "create", "--name", "d", "--json")))["webrtc_playback"]
    assert not json.loads(ok(run("streams", "create", "--name", "e", "--no-webrtc-playback",
                                 "--json")))["webrtc_playback"]


def test_bad_settings_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("http_port = 99999999\n")
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "bad.toml"), "streams", "list"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "http_port" in result.output


def test_tokens(run: Any) -> None:
    created = json.loads(ok(run("tokens", "create", "--name", "ci", "--json")))
    assert created["scopes"] == ["admin"] and created["token"]
    out = ok(run("tokens", "create", "--name", "dash", "--scope", "streams:read",
                 "--scope", "assets:read", "--expires-in", "3600"))
    assert "assets:read streams:read" in out
    listed = ok(run("tokens", "list"))
    assert "ci" in listed and "dash" in listed and created["token"] not in listed
    listed_json = json.loads(ok(run("tokens", "list", "--json")))
    assert [t["name"] for t in listed_json] == ["ci", "dash"]
    assert all("token" not in t for t in listed_json)
    assert "Revoked" in ok(run("tokens", "revoke", created["id"]))
    revoked = json.loads(ok(run("tokens", "list", "--json")))[0]
    assert revoked["revoked_at"] is not None
    result = run("tokens", "revoke", "nope")
    assert result.exit_code == 1 and "nope" in result.output
    dash = json.loads(ok(run("tokens", "list", "--json")))[1]
    assert dash["scopes"] == ["assets:read", "streams:read"] and dash["expires_at"]


def test_webhooks(run: Any) -> None:
    # Loopback is refused without webhook_allow_private_targets.
    refused = run("webhooks", "create", "--url", "http://127.0.0.1:9/hook")
    assert refused.exit_code == 1 and "not a public address" in refused.output
    bad = run("webhooks", "create", "--url", "http://93.184.215.14/", "--event", "stream.up")
    assert bad.exit_code == 1 and "not an event type" in bad.output
    created = json.loads(ok(run("webhooks", "create", "--url", "http://93.184.215.14/hook",
                                "--event", "live_stream.*", "--json")))
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["live_stream.*"]
    listed = ok(run("webhooks", "list"))
    assert created["id"] in listed and created["secret"] not in listed
    assert json.loads(ok(run("webhooks", "deliveries", created["id"], "--json"))) == []
    missing = run("webhooks", "redeliver", created["id"], "1")
    assert missing.exit_code == 1 and "no delivery 1" in missing.output
    assert "Deleted" in ok(run("webhooks", "delete", created["id"]))
    assert run("webhooks", "delete", created["id"]).exit_code == 1


def test_config_sample_parses(run: Any) -> None:
    out = ok(run("config", "sample"))
    parsed = tomllib.loads(out)
    assert parsed["http_port"] == 8080
    assert parsed["rtmp_port"] == 1935
    assert parsed["data_dir"] == "golive-data"
    assert "# rtmps_port =\n" in out
    assert "# HTTP port: API, playback, pages." in out
    assert Settings(**parsed).http_port == 8080
    for name in Settings.model_fields:
        assert f"{name} =" in out


def test_help_lists_everything(run: Any) -> None:
    out = ok(run("--help"))
    for command in ("serve", "streams", "tokens", "webhooks", "config"):
        assert command in out
    out = ok(run("streams", "--help"))
    for command in ("create", "list", "show", "reset-key", "reset-backup-key", "enable",
                    "disable", "delete"):
        assert command in out
    assert "--http-port" in ok(run("serve", "--help"))


def test_serve_builds_settings_from_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    monkeypatch.chdir(tmp_path)
    seen: list[Settings] = []
    fake = types.ModuleType("golive.app")
    fake.run_server = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "golive.app", fake)
    (tmp_path / "golive.toml").write_text('public_host = "tv.example.com"\nsrt_port = 9100\n')
    result = CliRunner().invoke(
        cli,
        [
            "serve",
            "--http-port",
            "8181",
            "--rtmp-port",
            "1936",
            "--data-dir",
            str(tmp_path / "d"),
            "--config",
            str(tmp_path / "golive.toml"),
            "--log-level",
            "debug",
        ],
        env={"GOLIVE_DATA_DIR": None},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [settings] = seen
    assert (settings.http_port, settings.rtmp_port, settings.srt_port) == (8181, 1936, 9100)
    assert settings.public_host == "tv.example.com"
    assert settings.data_dir == tmp_path / "d"
    assert settings.log_level == "debug"

    result = CliRunner().invoke(cli, ["serve", "--http-port", "70000"], catch_exceptions=False)
    assert result.exit_code == 2 and "http_port" in result.output


def test_stream_destinations(run: Any) -> None:
    sid = json.loads(ok(run("streams", "create", "--name", "Simulcast", "--json")))["id"]
    key = "live_abcdefgh12345678"
    added = json.loads(ok(run("streams", "destinations", "add", sid, "--name", "YouTube",
                              "--url", "rtmp://8.8.8.8/live2", "--key", key, "--json")))
    assert added["key"].endswith("5678") and key not in json.dumps(added)
    out = ok(run("streams", "destinations", "add", sid, "--name", "SRT",
                 "--url", "srt://8.8.4.4:9000"))
    assert "Added destination" in out
    # The URL is checked as the API checks it: no private targets by default.
    refused = run("streams", "destinations", "add", sid, "--name", "x",
                  "--url", "rtmp://127.0.0.1/app")
    assert refused.exit_code != 0 and "destination_allow_private_targets" in refused.output
    missing = run("streams", "destinations", "add", "ls_nope", "--name", "x",
                  "--url", "rtmp://8.8.8.8/app")
    assert missing.exit_code != 0 and "ls_nope" in missing.output

    listed = ok(run("streams", "destinations", "list", sid))
    assert "YouTube" in listed and "SRT" in listed and key not in listed
    rows = json.loads(ok(run("streams", "destinations", "list", sid, "--json")))
    assert [r["name"] for r in rows] == ["YouTube", "SRT"]
    assert all(r["status"] == "idle" for r in rows)  # no node to ask: not live

    # The default profile's ladder: 360p is a rendition, 4k is not.
    low = json.loads(ok(run("streams", "destinations", "add", sid, "--name", "Low",
                            "--url", "rtmp://8.8.8.8/low", "--rendition", "360p", "--json")))
    assert low["rendition"] == "360p"
    bad = run("streams", "destinations", "add", sid, "--name", "x",
              "--url", "rtmp://8.8.8.8/x", "--rendition", "4k")
    assert bad.exit_code == 2 and "--rendition" in bad.output and "4k" in bad.output
    off = json.loads(ok(run("streams", "destinations", "set", sid, low["id"], "--disable",
                            "--rendition", "source", "--json")))
    assert (off["enabled"], off["rendition"]) == (False, "source")
    assert run("streams", "destinations", "set", sid, low["id"]).exit_code == 2
    ok(run("streams", "destinations", "remove", sid, low["id"]))

    ok(run("streams", "destinations", "remove", sid, added["id"]))
    gone = run("streams", "destinations", "remove", sid, added["id"])
    assert gone.exit_code != 0 and added["id"] in gone.output
    rows = json.loads(ok(run("streams", "destinations", "list", sid, "--json")))
    assert [r["name"] for r in rows] == ["SRT"]
