"""The node's listening sockets: one rule for every port (core).

`host = "::"` means every address, IPv4 included, on HTTP, RTMP(S) and SRT alike: the
socket is made dual-stack (IPV6_V6ONLY off), whatever the system's default
(`net.ipv6.bindv6only`) and whatever asyncio would do (its `create_server` makes every
IPv6 socket IPv6-only, which left RTMP unreachable over IPv4 while HTTP answered). IPv4
clients then arrive as IPv4-mapped addresses (::ffff:a.b.c.d), which every per-address
limit counts as the IPv4 address (`client_key`). A specific address binds that address
alone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

__all__ = ["bind_datagram", "bind_stream"]


def _socket(host: str, kind: socket.SocketKind) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6 and _unspecified(host):
        with contextlib.suppress(OSError):  # a system without IPv4 keeps IPv6 alone
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified
    except ValueError:
        return False


def bind_stream(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (non-blocking, SO_REUSEADDR)."""
    sock = _socket(host, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_datagram(host: str, port: int) -> socket.socket:
    """A bound UDP socket on `host`:`port` (non-blocking)."""
    sock = _socket(host, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
