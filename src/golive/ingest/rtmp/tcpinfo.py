"""The kernel's view of an RTMP publisher's TCP connection: its round trip (ingest).

Linux keeps a smoothed round-trip estimate per TCP socket (`TCP_INFO`); it is the
closest thing RTMP has to SRT's link statistics, and preflight reports it beside
whether media arrives as fast as it is produced. Other systems have no `TCP_INFO`:
`tcp_round_trip` answers None there, as it does for a socket already gone.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol

__all__ = ["TcpRoundTrip", "parse_tcp_info", "tcp_round_trip"]

# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32s. The offsets are ABI.
_RTT_OFFSET = 68  # tcpi_rtt, tcpi_rttvar (microseconds)
_RCV_RTT_OFFSET = 92  # tcpi_rcv_rtt (microseconds; the receiver's own estimate)
_TOTAL_RETRANS_OFFSET = 100
_INFO_SIZE = 104


@dataclass(frozen=True, slots=True)
class TcpRoundTrip:
    rtt_ms: float  # smoothed RTT (from the handshake and what golive sends)
    rtt_var_ms: float
    receive_rtt_ms: float  # as the receiving side estimates it (0: no estimate yet)
    retransmitted: int  # segments golive had to send again


class _Socket(Protocol):
    def getsockopt(self, level: int, option: int, buflen: int, /) -> bytes: ...


def parse_tcp_info(raw: bytes) -> TcpRoundTrip | None:
    """The round-trip fields of a `TCP_INFO` answer (None: too short to hold them)."""
    if len(raw) < _INFO_SIZE:
        return None
    rtt, rtt_var = struct.unpack_from("=II", raw, _RTT_OFFSET)
    (receive,) = struct.unpack_from("=I", raw, _RCV_RTT_OFFSET)
    (retrans,) = struct.unpack_from("=I", raw, _TOTAL_RETRANS_OFFSET)
    return TcpRoundTrip(rtt / 1000, rtt_var / 1000, receive / 1000, retrans)


def tcp_round_trip(sock: _Socket | None) -> TcpRoundTrip | None:
    """The socket's round trip now; None without TCP_INFO (not Linux) or a socket."""
    option = getattr(socket, "TCP_INFO", None)
    if sock is None or option is None:
        return None
    try:
        return parse_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, option, _INFO_SIZE))
    except (OSError, ValueError):
        return None
