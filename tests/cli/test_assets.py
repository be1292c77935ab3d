"""`golive assets list|get|delete` against SQLite and local storage in tmp_path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner
from tests.recording.helpers import recorded_asset

from golive.cli import cli
from golive.store import Store


def test_assets_list_get_delete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"GOLIVE_DATA_DIR": str(data), "GOLIVE_CONFIG": str(tmp_path / "none.toml")}

    async def make() -> tuple[str, str]:
        store = await Store.open(f"sqlite+aiosqlite:///{(data / 'golive.db').resolve()}")
        try:
            asset_id = await recorded_asset(store, data / "recordings", count=4)
            streams = await store.list_streams()
            return asset_id, streams[0].id
        finally:
            await store.close()

    asset_id, stream_id = asyncio.run(make())
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(run("assets", "list", "--json"))
    assert [a["id"] for a in listed] == [asset_id] and listed[0]["duration"] == 4.0
    assert asset_id in run("assets", "list")
    shown = json.loads(run("assets", "get", asset_id, "--json"))
    assert shown["status"] == "ready" and shown["live_stream_id"] == stream_id
    assert f"/vod/{shown['playback_ids'][0]['id']}.m3u8" in run("assets", "get", asset_id)
    assert json.loads(run("assets", "delete", asset_id, "--json")) == {"id": asset_id,
                                                                       "deleted": True}
    assert not (data / "recordings" / asset_id).exists()
    assert json.loads(run("assets", "list", "--json")) == []
    kept = json.loads(run("streams", "create", "--name", "kept", "--recording",
                          "--recording-retention-days", "30", "--json"))
    assert kept["recording"] and kept["recording_retention_days"] == 30
    missing = runner.invoke(cli, ["assets", "get", asset_id], env=env)
    assert missing.exit_code != 0 and "no asset" in missing.output
    events = json.loads(run("streams", "show", stream_id, "--json"))
    assert events["id"] == stream_id

    async def logged() -> list[str]:
        store = await Store.open(f"sqlite+aiosqlite:///{(data / 'golive.db').resolve()}")
        try:
            return [e.type for e in await store.list_events(stream_id)]
        finally:
            await store.close()

    assert "asset.deleted" in asyncio.run(logged())
