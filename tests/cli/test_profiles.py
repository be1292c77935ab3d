"""`golive profiles` through click's CliRunner, against SQLite in tmp_path: list, show,
validate, diff, history, pin (frozen while live, forced), rollback; `--json` everywhere."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from golive.cli import cli
from golive.store import Store

SHOW = """name = "show"
version = {version}
owner = "events team"

[[renditions]]
name = "720p"
height = 720
video_bitrate_kbps = {bitrate}
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "profiles").mkdir(parents=True)
    runner = CliRunner()
    env = {"GOLIVE_DATA_DIR": str(tmp_path / "data"), "GOLIVE_CONFIG": str(tmp_path / "none.toml")}

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def write(tmp_path: Path, version: int, bitrate: int = 3000) -> None:
    path = tmp_path / "data" / "profiles" / "show.toml"
    path.write_text(SHOW.format(version=version, bitrate=bitrate))


def go_live(tmp_path: Path, stream_id: str) -> None:
    """An open broadcast, as the hub records one when a publisher connects."""
    async def start() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'golive.db'}")
        try:
            await store.start_broadcast(stream_id, "bc_cli", "srt", "127.0.0.1", datetime.now(UTC))
        finally:
            await store.close()

    asyncio.run(start())


def test_list_show_history_and_diff(run: Any, tmp_path: Path) -> None:
    write(tmp_path, 1)
    listed = json.loads(ok(run("profiles", "list", "--json")))
    assert {"default@1", "low-cpu@1", "passthrough@1", "show@1"} <= {p["label"] for p in listed}
    assert "show@1" in ok(run("profiles", "list"))
    write(tmp_path, 2, bitrate=2500)

    shown = json.loads(ok(run("profiles", "show", "show", "--json")))
    assert (shown["label"], shown["owner"]) == ("show@2", "events team")
    assert shown["settings"]["renditions"][0]["video_bitrate_kbps"] == 2500
    assert "video_bitrate_kbps = 2500" in ok(run("profiles", "show", "show"))

    history = json.loads(ok(run("profiles", "history", "show", "--json")))
    assert [h["label"] for h in history] == ["show@2", "show@1"]
    diff = json.loads(ok(run("profiles", "diff", "show@1", "show@2", "--json")))
    assert diff["changes"] == [
        {"field": "renditions[0].video_bitrate_kbps", "old": 3000, "new": 2500}]
    assert "renditions[0].video_bitrate_kbps  3000  2500" in ok(
        run("profiles", "diff", "show@1", "show"))

    result = run("profiles", "show", "show@7")
    assert result.exit_code == 1 and "unknown profile 'show@7'" in result.output


def test_validate_names_each_bad_field(run: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(SHOW.format(version=1, bitrate=3000).replace('"show"', '"good"'))
    bad = tmp_path / "bad.toml"
    bad.write_text(SHOW.format(version=1, bitrate=30).replace('name = "show"\n', "")
                   + "[audio]\nchannels = 6\n")
    result = run("profiles", "validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{good}: ok (good@1)" in result.output
    assert f"{bad}: renditions[0].video_bitrate_kbps: must be between 50 and 200000 (got 30)" \
        in result.output
    assert f"{bad}: audio.channels: must be one of 1, 2 (got 6)" in result.output
    checked = json.loads(run("profiles", "validate", "--json", str(good)).output)
    assert checked == [{"file": str(good), "valid": True, "label": "good@1", "errors": []}]


def test_pin_is_frozen_while_live_and_rollback(run: Any, tmp_path: Path) -> None:
    write(tmp_path, 1)
    created = json.loads(ok(run("streams", "create", "--name", "x", "--profile", "show",
                                "--json")))
    sid = created["id"]
    assert created["profile"] == "show@1"
    write(tmp_path, 2, bitrate=2500)
    assert "show@1 -> show@2" in ok(run("profiles", "pin", sid, "show"))
    rolled = json.loads(ok(run("profiles", "rollback", sid, "--json")))
    assert rolled["profile"] == "show@1"

    go_live(tmp_path, sid)
    result = run("streams", "update", sid, "--profile", "show@2")
    assert result.exit_code == 1 and "is frozen" in result.output
    result = run("profiles", "rollback", sid)
    assert result.exit_code == 1 and "--force-reason" in result.output
    result = run("profiles", "pin", sid, "show@2", "--force-reason", "uplink",
                 "--field", "audio")
    assert result.exit_code == 1 and "also touches renditions[0].video_bitrate_kbps" \
        in result.output
    assert "(forced while live)" in ok(run(
        "profiles", "pin", sid, "show@2", "--force-reason", "uplink",
        "--field", "renditions[0].video_bitrate_kbps"))

    pins = json.loads(ok(run("profiles", "history", "--stream", sid, "--json")))
    assert [(p["profile"], p["forced"]) for p in pins] == [
        ("show@2", True), ("show@1", False), ("show@2", False), ("show@1", False)]
    events = json.loads(ok(run("streams", "show", sid, "--json")))
    assert events["profile"] == "show@2"

    async def recorded() -> tuple[list[Any], list[Any]]:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'golive.db'}")
        try:
            return (await store.list_events(sid),
                    await store.list_audit(action="live_stream.profile_pin"))
        finally:
            await store.close()

    stored, audit = asyncio.run(recorded())
    forced = [e for e in stored if "forced" in e.data]
    assert len(forced) == 1 and forced[0].broadcast_id == "bc_cli"
    assert forced[0].data["forced"]["reason"] == "uplink"
    assert audit[0].actor_type == "cli" and audit[0].details["forced"]["fields"] == [
        "renditions[0].video_bitrate_kbps"]
