"""Behind trusted_proxies every route sees the forwarded client; from anyone else the
forwarding headers are ignored. Checked on the API's per-address token throttle."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import ipv6_loopback, node_settings

from golive.app import Golive
from golive.httpserver.server import trusted_networks

GUESSES = 11  # one past the throttle's default burst of wrong tokens


async def guess_until_throttled(client: httpx.AsyncClient, forwarded_for: str) -> list[int]:
    codes = []
    for _ in range(GUESSES):
        r = await client.get("/api/v1/live-streams", headers={
            "Authorization": "Bearer wrong-token", "X-Forwarded-For": forwarded_for})
        codes.append(r.status_code)
    return codes


@pytest.mark.parametrize(("trusted", "host"), [
    ("127.0.0.0/8", "127.0.0.1"),
    ("", "127.0.0.1"),
    # Listening on every address, IPv4 and IPv6: the proxy's IPv4 connection reaches a
    # dual-stack socket as ::ffff:127.0.0.1, and is still the trusted 127.0.0.0/8.
    ("127.0.0.0/8", "::"),
])
async def test_forwarded_client_is_used_only_behind_a_trusted_proxy(
    tmp_path: Path, trusted: str, host: str
) -> None:
    if host == "::" and not ipv6_loopback():
        pytest.skip("this machine has no IPv6")
    settings = node_settings(tmp_path, trusted_proxies=trusted, host=host)
    async with Golive(settings) as node, \
            httpx.AsyncClient(base_url=node.http_url) as client:
        assert (await guess_until_throttled(client, "198.51.100.7"))[-1] == 429
        other = await client.get("/api/v1/live-streams", headers={
            "Authorization": "Bearer wrong-token", "X-Forwarded-For": "198.51.100.8"})
        # Trusted: another client behind the same proxy has its own budget. Not trusted:
        # the header is the attacker's to write, so the proxy's address is the client.
        assert other.status_code == (401 if trusted else 429)


def test_trusted_proxies_are_checked_at_start() -> None:
    assert trusted_networks(" 10.0.0.0/8, ::1 ,") == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError):
        trusted_networks("10.0.0.0/8, not-a-network")
