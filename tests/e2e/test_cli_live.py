"""`golive streams show` against a running node: live facts come from the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from tests.e2e.conftest import ADMIN, create_stream, wait_status
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive
from golive.cli import cli

pytestmark = pytest.mark.slow


async def test_streams_show_reads_live_facts_from_the_server(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api)
    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    env = {
        "GOLIVE_DATA_DIR": str(node.settings.data_dir),
        "GOLIVE_HOST": "127.0.0.1",
        "GOLIVE_HTTP_PORT": str(node.http_port),
        "GOLIVE_TOKEN": ADMIN,
    }
    try:
        await wait_status(api, stream["id"], "active")
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["streams", "show", stream["id"], "--json"], env=env
        )
        assert result.exit_code == 0, result.output
        shown = json.loads(result.output)
        assert shown["status"] == "active"
        assert shown["live"]["video_codec"] == "h264"
        human = await asyncio.to_thread(
            CliRunner().invoke, cli, ["streams", "show", stream["id"]], env=env
        )
        assert "video codec" in human.output and "h264" in human.output
    finally:
        stop(proc)
