"""deploy/caddy/Caddyfile in a real Caddy (2.6, Debian's) in front of a real node.

Through Caddy: the multivariant, a held LL-HLS reload answered as soon as its part exists
(nothing buffered on the way), a part byte for byte, WHIP and WHEP offers (SDP bodies),
the chat WebSocket; and the client address golive sees is the one Caddy forwards only
because Caddy is in `trusted_proxies`, while a forged X-Forwarded-For gains nothing, sent
to Caddy or straight to the node. Caddy runs plain HTTP here (TLS at Caddy is Caddy's own
business) with its admin endpoint off, on free ports, and is stopped by pid.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.nginxedge import free_port, served
from tests.webrtc_client import rtc_config, whep_play, whip_publish

from golive.app import Golive

pytestmark = pytest.mark.slow

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"
CADDY = shutil.which("caddy")
GUESSES = 11  # one past the API's burst of wrong tokens per client address (test_forwarded)


def wrapper_config(tmp: Path) -> Path:
    """The test's Caddyfile: global options only (no admin endpoint), then the shipped one."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "Caddyfile"
    config.write_text(f"{{\n\tadmin off\n}}\nimport {CADDYFILE}\n")
    return config


@asynccontextmanager
async def caddy_proxy(tmp: Path, origin_port: int) -> AsyncIterator[str]:
    """deploy/caddy/Caddyfile as shipped, for http://127.0.0.1:PORT in front of the node
    (CADDY_SITE and CADDY_UPSTREAM are the file's own settings)."""
    assert CADDY is not None, "caddy is not installed (scripts/install-system-deps.sh)"
    config = wrapper_config(tmp)
    port = free_port()
    env = {**os.environ, "CADDY_SITE": f"http://127.0.0.1:{port}",
           "CADDY_UPSTREAM": f"127.0.0.1:{origin_port}",
           # Caddy's state (autosave, certificates) in the test's directory, not $HOME.
           "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "data"),
           "XDG_CONFIG_HOME": str(tmp / "config")}
    with (tmp / "caddy.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            CADDY, "run", "--config", str(config), "--adapter", "caddyfile", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=log)
        async with served(proc, port, f"http://127.0.0.1:{port}") as url:
            yield url


def from_address(address: str, base: str, **options: Any) -> httpx.AsyncClient:
    """A client whose connections come from `address` (another loopback address), so the
    node can tell it from Caddy (127.0.0.1)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=10, **options)


async def guesses(client: httpx.AsyncClient, forged: str | None = None) -> list[int]:
    """Wrong API tokens until the per-address throttle answers (429); a forged
    X-Forwarded-For, if given, different on every request."""
    codes = []
    for n in range(GUESSES):
        headers = {"Authorization": "Bearer wrong-token"}
        if forged is not None:
            headers["X-Forwarded-For"] = f"{forged}{n}"
        codes.append((await client.get("/api/v1/live-streams", headers=headers)).status_code)
    return codes


async def test_golive_behind_caddy(tmp_path: Path, source_flv: Path) -> None:
    settings = node_settings(tmp_path, trusted_proxies="127.0.0.1", webrtc_playback=True,
                             **rtc_config())
    async with Golive(settings) as node, caddy_proxy(tmp_path / "caddy", node.http_port) as base, \
            httpx.AsyncClient(base_url=base, timeout=10) as http, \
            httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="behind caddy")
        other = await create_stream(api, name="whip behind caddy")
        pid = stream["playback_ids"][0]["id"]

        # The client address: Caddy forwards the one it saw (127.0.0.2 and 127.0.0.3 here),
        # and golive, trusting Caddy, gives each its own throttle budget.
        async with from_address("127.0.0.2", base) as viewer, \
                from_address("127.0.0.3", base) as neighbour:
            assert (await guesses(viewer))[-1] == 429
            assert (await guesses(neighbour))[0] == 401
            # A forged X-Forwarded-For sent to Caddy is replaced by the real client's
            # address: 127.0.0.2 stays throttled whatever it claims to be (were the header
            # believed, each claimed address would have its own budget: all 401). The
            # bucket refills one failure per 2 s, hence "at most one through".
            assert (await guesses(viewer, forged="198.51.100.")).count(401) <= 1
        # Straight to the node, from an address not in trusted_proxies, the header is
        # ignored: every forged address shares the one real client's budget.
        async with from_address("127.0.0.4", node.http_url) as direct:
            assert 429 in await guesses(direct, forged="203.0.113.")

        # The chat WebSocket upgrades through Caddy.
        async with websockets.connect(f"ws://{base.removeprefix('http://')}/chat/{pid}",
                                      open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "join", "name": "ann"}))
            seen: list[dict[str, Any]] = []
            while not any(f.get("type") == "identity" for f in seen):
                raw = json.loads(await asyncio.wait_for(ws.recv(), 10))
                seen.extend(raw if isinstance(raw, list) else [raw])
            assert not any(f.get("type") == "error" for f in seen), seen

        # WHIP: an SDP offer in, an SDP answer and the session's Location out, through Caddy.
        publisher = await whip_publish(base, other["stream_key"])
        try:
            assert publisher.answer.startswith("v=0") and publisher.location.startswith("/whip")
            assert (await publisher.delete()).status_code in (200, 204)
        finally:
            await publisher.close()

        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def multivariant() -> httpx.Response | None:
                response = await http.get(f"/live/{pid}.m3u8")
                return response if response.status_code == 200 else None

            top = await eventually(multivariant, timeout=60, what="the multivariant")
            assert "#EXT-X-STREAM-INF" in top.text
            rendition = next(line for line in top.text.splitlines()
                             if line and not line.startswith("#"))
            name = rendition.rsplit("/", 1)[-1].removesuffix(".m3u8")
            assert node.pipeline is not None
            presentation = node.pipeline.presentation(pid)
            assert presentation is not None
            window = presentation.renditions[name]

            # A held reload for the part after the newest one, through Caddy and straight
            # to the node at once: the origin answers both the moment that part exists,
            # and Caddy passes its answer on as it comes. (The bound is far above the
            # few ms Caddy adds, only to tell "passed on" from "held back": a part.)
            loop = asyncio.get_running_loop()
            for _ in range(3):
                msn, idx = window.next_part()
                params = {"_HLS_msn": msn, "_HLS_part": idx}

                async def timed(client: httpx.AsyncClient, url: str) -> tuple[float, str]:
                    response = await client.get(url, params=params)  # noqa: B023
                    assert response.status_code == 200, response.text
                    return loop.time(), response.text

                async with httpx.AsyncClient(timeout=10) as plain:
                    (proxied_at, held), (direct_at, _) = await asyncio.gather(
                        timed(http, f"{base}/live/{pid}/{name}.m3u8"),
                        timed(plain, f"{node.http_url}/live/{pid}/{name}.m3u8"))
                # It lists that part, or the next segment's first if that part's segment
                # ended before it (a keyframe came).
                parts = re.findall(r'#EXT-X-PART:[^\n]*part-(\d+)\.(\d+)\.m4s"', held)
                assert (int(parts[-1][0]), int(parts[-1][1])) >= (msn, idx), parts[-1]
                assert proxied_at - direct_at < window.part_target, (proxied_at - direct_at)

            # A part, byte for byte what the origin holds.
            part = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', held)[-1]
            numbers = re.fullmatch(r".*part-(\d+)\.(\d+)\.m4s", part)
            assert numbers is not None
            media = await http.get(f"/live/{pid}/{part}")
            assert media.status_code == 200
            assert media.content == window.part_bytes(int(numbers[1]), int(numbers[2]))

            # WHEP: a recvonly offer through Caddy gets its answer once the WebRTC output runs.
            async def whep_ready() -> bool | None:
                feed = node.pipeline.webrtc_feed(pid) if node.pipeline else None
                return True if feed is not None and feed.video_packets > 0 else None

            await eventually(whep_ready, timeout=60, what="the WebRTC output")
            player = await whep_play(base, pid)
            try:
                assert player.answer.startswith("v=0")
                assert player.location.startswith(f"/whep/{pid}/")
                assert (await player.delete()).status_code in (200, 204)
            finally:
                await player.close()
        finally:
            stop(proc)


async def test_forwarded_for_through_caddy_is_ignored_unless_trusted(tmp_path: Path) -> None:
    # The same Caddy, the node trusting no proxy: everyone behind Caddy is Caddy.
    async with Golive(node_settings(tmp_path)) as node, \
            caddy_proxy(tmp_path / "caddy", node.http_port) as base, \
            from_address("127.0.0.2", base) as viewer, \
            from_address("127.0.0.3", base) as neighbour:
        assert (await guesses(viewer))[-1] == 429
        assert (await guesses(neighbour))[0] == 429
