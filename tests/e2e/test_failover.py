"""Backup ingest end to end: a second encoder publishing with the stream's backup key.

What exists so far is a cold standby: the backup key publishes exactly like the stream
key, so a backup encoder that connects once the primary is gone, inside the reconnect
window, continues the same broadcast. Both connected at once (a hot standby) is refused
while the primary is live.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, get_stream, wait_process, wait_status
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_backup_key_takes_over_the_broadcast_and_is_dropped_when_replaced(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api, reconnect_window=10)
    made = await api.post(f"/live-streams/{stream['id']}/reset-backup-stream-key")
    assert made.status_code == 200, made.text
    backup_url = node.rtmp_url(made.json()["data"]["backup_stream_key"])

    primary = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        live = await wait_status(api, stream["id"], "active")
        broadcast_id = live["live"]["broadcast_id"]
        # The primary is live: the backup may not publish beside it.
        refused = ffmpeg_publish(source_flv, backup_url, loop=True)
        try:
            assert await wait_process(refused) != 0
        finally:
            stop(refused)
    finally:
        os.kill(primary.pid, signal.SIGKILL)
        primary.wait()

    async def connected(want: bool) -> dict[str, Any] | None:
        data = await get_stream(api, stream["id"])
        return data if data["live"] and data["live"]["connected"] is want else None

    lost = await eventually(lambda: connected(False), what="primary loss noticed")
    assert lost["status"] == "active"

    backup = ffmpeg_publish(source_flv, backup_url, loop=True)
    try:
        back = await eventually(lambda: connected(True), what="backup publishing")
        assert back["live"]["broadcast_id"] == broadcast_id
        assert back["live"]["reconnects"] == 1
        # Replacing the backup key drops the encoder that uses it, like a stream key reset.
        again = await api.post(f"/live-streams/{stream['id']}/reset-backup-stream-key")
        assert again.status_code == 200, again.text
        assert await wait_process(backup) != 0
    finally:
        stop(backup)
    dropped = await eventually(lambda: connected(False), what="old backup key dropped")
    assert dropped["live"]["broadcast_id"] == broadcast_id
