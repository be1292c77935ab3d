"""Where outbound connections may go: a host's addresses and whether each is public (core).

Webhooks and destinations both refuse targets that resolve to anything not globally
routable (private, loopback, link-local, shared, multicast, reserved ...) unless an
operator allows it, and both check the addresses DNS gives at the time of the attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Globally routable and not multicast (an IPv4-mapped IPv6 address as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve_addresses(host: str, port: int) -> tuple[IPAddress, ...]:
    """`host` itself when it is an IP literal, else the addresses DNS answers, in order,
    each once, without scope ids. Raises OSError or UnicodeError when it does not resolve."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for info in infos:
        found[ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])] = None
    return tuple(found)


class OutboundRefused(ValueError):
    """A target host that does not resolve, or resolves to an address that is not public."""


async def outbound_addresses(host: str, port: int, *, allow_private: bool,
                             private_hint: str) -> tuple[IPAddress, ...]:
    """`host`'s addresses, refused (OutboundRefused, a message for the operator) when it does
    not resolve or, unless `allow_private`, when any address is not public; `private_hint`
    ends that message (what is not public, and the setting that allows it)."""
    try:
        addresses = await resolve_addresses(host, port)
    except (OSError, UnicodeError) as exc:
        raise OutboundRefused(f"url host {host!r} does not resolve: {exc}") from None
    if not addresses:
        raise OutboundRefused(f"url host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise OutboundRefused(f"url host {host!r} resolves to {address}, which is not "
                                      f"a public address{private_hint}")
    return addresses
