"""HTTPS on the node's HTTP port: httpx trusting the test CA plays LL-HLS, Chromium plays the
watch page, head limits still answer 431 through TLS, plain HTTP gets no answer."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.tlscerts import ServerCertificate, make_server_certificate
from tests.web.helpers import ConsoleLog, wait_playing

from golive.app import Golive

pytestmark = pytest.mark.slow


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return make_server_certificate(tmp_path / "tls")


@pytest.fixture
async def tls_node(tmp_path: Path, certificate: ServerCertificate) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path, tls_cert=certificate.cert, tls_key=certificate.key)
    async with Golive(settings) as n:
        yield n


async def _status_line(port: int, context: ssl.SSLContext, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="127.0.0.1")
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 15)
    finally:
        writer.close()


async def test_https_plays_in_httpx_and_chromium(
    tls_node: Golive, certificate: ServerCertificate, source_480p: Path, browser: Any
) -> None:
    assert tls_node.http_url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(certificate.ca))
    async with httpx.AsyncClient(base_url=tls_node.http_url, verify=trust, timeout=10) as http:
        api = httpx.AsyncClient(base_url=f"{tls_node.http_url}/api/v1", verify=trust, timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN}"})
        stream = await create_stream(api, name="over tls")
        pid = stream["playback_ids"][0]["id"]
        proc = ffmpeg_publish(source_480p, tls_node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def playlist() -> str | None:
                response = await http.get(f"/live/{pid}.m3u8")
                return response.text if response.status_code == 200 else None

            multivariant = await eventually(playlist, timeout=60, what="the multivariant")
            rendition = next(line for line in multivariant.splitlines()
                             if line and not line.startswith("#"))
            media = await http.get(httpx.URL(f"{tls_node.http_url}/live/{pid}.m3u8").join(
                rendition))
            assert media.status_code == 200 and "#EXT-X-PART:" in media.text, media.text
            assert media.http_version == "HTTP/1.1"
            part = re.search(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', media.text)
            assert part is not None
            body = await http.get(media.url.join(part.group(1)))
            assert body.status_code == 200 and body.content[4:8] in (b"moof", b"styp")

            # A client that does not trust the CA is refused by its own TLS check.
            async with httpx.AsyncClient(timeout=10) as stranger:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await stranger.get(f"{tls_node.http_url}/healthz")
            # The head limit (64 KiB, counted per read) still applies to what arrives
            # through TLS: a 1 MiB head spans many decrypted reads.
            huge = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1024 * 1024
                    + b"\r\n\r\n")
            assert (await _status_line(tls_node.http_port, trust, huge)).startswith(
                b"HTTP/1.1 431")
            # Plain HTTP on the HTTPS port gets no HTTP answer.
            async with httpx.AsyncClient(timeout=10) as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get(f"http://127.0.0.1:{tls_node.http_port}/healthz")

            context = await browser.new_context(ignore_https_errors=True,
                                                viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            console = ConsoleLog(page)
            await page.goto(f"{tls_node.http_url}/watch/{pid}")
            assert await page.evaluate("() => location.protocol") == "https:"
            await wait_playing(page)
            assert console.errors == [], console.errors
            await context.close()
        finally:
            stop(proc)
            await api.aclose()
