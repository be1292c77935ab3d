"""TCP_INFO read from a real loopback connection, and short answers refused."""

from __future__ import annotations

import socket
import sys

import pytest

from golive.ingest.rtmp.tcpinfo import parse_tcp_info, tcp_round_trip


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")
def test_a_loopback_connection_has_a_small_round_trip() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            client.sendall(b"x" * 10_000)
            accepted.recv(10_000)
            accepted.sendall(b"ack")
            client.recv(3)
            found = tcp_round_trip(accepted)
            assert found is not None
            assert 0 < found.rtt_ms < 50  # loopback: well under a millisecond usually
            assert found.retransmitted == 0


def test_short_or_missing_answers_are_none() -> None:
    assert parse_tcp_info(b"\0" * 50) is None
    assert tcp_round_trip(None) is None
    raw = bytearray(104)
    raw[68:72] = (250_000).to_bytes(4, sys.byteorder)
    raw[72:76] = (5_000).to_bytes(4, sys.byteorder)
    found = parse_tcp_info(bytes(raw))
    assert found is not None and (found.rtt_ms, found.rtt_var_ms) == (250.0, 5.0)
