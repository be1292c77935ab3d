"""A transcoder starved of CPU below real time fires `encoder_slow`: the machine is
overloaded, lower the ladder (the starvation wrapper of the degrade tests)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, stop
from tests.starvation import DegradeWarnings, starved_golive, transcoder_pid

from golive.app import Golive
from golive.core import EventType

# serial: it starves the CPU on purpose, so it runs alone (make test).
pytestmark = [pytest.mark.slow, pytest.mark.serial]


@pytest.mark.timeout(240)
async def test_a_starved_encoder_fires_encoder_slow_naming_the_overloaded_machine(
    tmp_path: Path, source_flv: Path
) -> None:
    async with starved_golive(tmp_path) as (node, starvation), httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as api:
        warnings = DegradeWarnings(node)
        alerts = node.bus.subscribe(accept=lambda e: e.type is EventType.ALERT_FIRING)
        stream = await create_stream(api, name="starve", profile="starve")
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            pid = await eventually(
                lambda: _pid(node, stream["id"]), timeout=30, what="the transcoder")
            starvation.start(pid)
            await warnings.step("slow_encode", 1)

            async def encoder_alert() -> dict[str, object] | None:
                while (event := alerts.get_nowait()) is not None:
                    if event.data["rule"] == "encoder_slow":
                        return dict(event.data)
                return None

            fired = await eventually(encoder_alert, timeout=60, what="encoder_slow firing")
            assert isinstance(fired["value"], float) and fired["value"] < 1.0
            assert "overloaded" in str(fired["cause"]) and "lower the ladder" in str(fired["fix"])
            listed = (await api.get(f"/live-streams/{stream['id']}/alerts")).json()["data"]
            assert "encoder_slow" in [a["rule"] for a in listed["active"]]
        finally:
            starvation.stop(transcoder_pid(node, stream["id"]))
            stop(proc)
            warnings.close()
            alerts.close()


async def _pid(node: Golive, stream_id: str) -> int | None:
    return transcoder_pid(node, stream_id)
