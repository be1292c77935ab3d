"""Where a webhook may be sent: SSRF protection by resolved address (webhooks).

A URL is refused when its host resolves to any address that is not globally
routable (private, loopback, link-local, shared, multicast, reserved ...), unless
`allow_private` is set. The check runs when an endpoint is created or changed and
again before every delivery, after DNS resolution; the delivery then connects to an
address that passed, so a name re-pointed between check and connect (DNS
rebinding) gains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from golive.core import IPAddress, OutboundRefused, outbound_addresses

DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetRefused(Exception):
    """A webhook URL golive will not send to; the message says why."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    url: httpx.URL
    host: str
    addresses: tuple[IPAddress, ...]

    def connect_url(self) -> httpx.URL:
        """The URL with its host replaced by the first checked address."""
        return self.url.copy_with(host=str(self.addresses[0]))


async def resolve_target(url: str, *, allow_private: bool) -> ResolvedTarget:
    """Resolve `url`'s host; raises `TargetRefused` when it may not be sent to."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"url is not a valid URL: {exc}") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise TargetRefused("url must be an absolute http:// or https:// URL")
    host = parsed.host
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    try:
        addresses = await outbound_addresses(
            host, port, allow_private=allow_private,
            private_hint=" (private, loopback, link-local or reserved); set "
                         "webhook_allow_private_targets to send webhooks there")
    except OutboundRefused as exc:
        raise TargetRefused(str(exc)) from None
    return ResolvedTarget(parsed, host, addresses)
