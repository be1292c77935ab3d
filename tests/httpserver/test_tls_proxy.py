"""deploy/nginx/tls-proxy.conf in a real nginx: TLS at the proxy, golive behind it trusting
its X-Forwarded-* headers; playback, the chat WebSocket and pages work through it."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.nginxedge import NGINX, free_port, main_config, served
from tests.tlscerts import ServerCertificate, make_server_certificate

from golive.app import Golive

pytestmark = pytest.mark.slow

TLS_PROXY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "tls-proxy.conf"


def render(tmp: Path, origin_port: int, port: int, certificate: ServerCertificate) -> Path:
    """nginx.conf including the rendered tls-proxy.conf; returns nginx.conf."""
    rendered = (TLS_PROXY_CONF.read_text()
                .replace("{{ORIGIN}}", f"127.0.0.1:{origin_port}")
                .replace("{{LISTEN}}", f"127.0.0.1:{port}")
                .replace("{{SERVER_NAME}}", "localhost")
                .replace("{{CERT}}", str(certificate.cert))
                .replace("{{KEY}}", str(certificate.key)))
    assert "{{" not in rendered
    (tmp / "tls-proxy.conf").write_text(rendered)
    (tmp / "nginx.conf").write_text(main_config(tmp, tmp / "tls-proxy.conf"))
    return tmp / "nginx.conf"


@asynccontextmanager
async def tls_proxy(tmp: Path, origin_port: int,
                    certificate: ServerCertificate) -> AsyncIterator[str]:
    port = free_port()
    conf = render(tmp, origin_port, port, certificate)
    checked = subprocess.run([str(NGINX), "-t", "-p", str(tmp), "-c", str(conf),
                              "-g", "error_log stderr warn;"],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    proc = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp), "-c", str(conf), "-g", "daemon off; error_log stderr warn;")
    async with served(proc, port, f"https://127.0.0.1:{port}") as url:
        yield url


@pytest.mark.parametrize("trusted", ["127.0.0.1", ""])
async def test_golive_behind_the_nginx_tls_proxy(tmp_path: Path, source_flv: Path,
                                                 trusted: str) -> None:
    certificate = make_server_certificate(tmp_path / "tls")
    trust = ssl.create_default_context(cafile=str(certificate.ca))
    (tmp_path / "nginx").mkdir()
    async with Golive(node_settings(tmp_path, trusted_proxies=trusted)) as node, \
            tls_proxy(tmp_path / "nginx", node.http_port, certificate) as base, \
            httpx.AsyncClient(base_url=base, verify=trust, timeout=10) as http:
        api = httpx.AsyncClient(base_url=f"{base}/api/v1", verify=trust, timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN}"})
        try:
            stream = await create_stream(api, name="behind nginx")
        finally:
            await api.aclose()
        pid = stream["playback_ids"][0]["id"]

        # The page golive renders knows it is served over https, at the proxy's address,
        # only when it trusts the proxy's headers.
        page = await http.get(f"/watch/{pid}")
        assert page.status_code == 200
        embed = re.search(r'(https?://[^"/]+)/embed/' + pid, page.text)
        assert embed is not None
        assert embed.group(1) == (base if trusted else
                                  f"http://127.0.0.1:{base.rsplit(':', 1)[1]}")
        if not trusted:
            return

        # The chat WebSocket upgrades through the proxy.
        async with websockets.connect(f"wss://{base.removeprefix('https://')}/chat/{pid}",
                                      ssl=trust, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "join", "name": "ann"}))
            seen: list[dict[str, Any]] = []
            while not any(f.get("type") == "identity" for f in seen):
                raw = json.loads(await asyncio.wait_for(ws.recv(), 10))
                seen.extend(raw if isinstance(raw, list) else [raw])
            assert not any(f.get("type") == "error" for f in seen), seen

        # LL-HLS through the proxy: a blocking reload is held and answered.
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                         headers={"Authorization": f"Bearer {ADMIN}"}) as local:
                await wait_status(local, stream["id"], "active")

            async def multivariant() -> httpx.Response | None:
                response = await http.get(f"/live/{pid}.m3u8")
                return response if response.status_code == 200 else None

            top = await eventually(multivariant, timeout=60, what="the multivariant")
            rendition = next(line for line in top.text.splitlines()
                             if line and not line.startswith("#"))
            media = await http.get(top.url.join(rendition))
            assert media.status_code == 200, media.text
            msn = int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", media.text)[0])
            segments = media.text.count("#EXTINF")
            held = await http.get(media.url.join(rendition.rsplit("/", 1)[-1]),
                                  params={"_HLS_msn": msn + segments + 1, "_HLS_part": 0})
            assert held.status_code == 200
            assert "#EXT-X-MEDIA-SEQUENCE:" in held.text
        finally:
            stop(proc)
