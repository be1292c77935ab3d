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
