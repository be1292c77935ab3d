from __future__ import annotations

import struct

from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from golive.ingest.srt.connection import SrtConnection
from golive.ingest.srt.crypto import KeyMaterial, KmState, PayloadDecryptor, derive_kek
from golive.ingest.srt.packet import (
    ControlPacket,
    ControlType,
    DataPacket,
    KeyFlag,
    Position,
    UserSubtype,
    parse_packet,
)

RESPONSE = b"conclusion-response"


def connection(decryptor: PayloadDecryptor | None = None) -> SrtConnection:
    return SrtConnection(socket_id=11, peer_socket=22, initial_seq=0, latency=0.1,
                         flow_window=64, time_base=0.0, now=0.0, handshake_response=RESPONSE,
                         decryptor=decryptor, idle_timeout=5.0)


def data(seq: int) -> DataPacket:
    return DataPacket(seq, Position.SOLO, False, KeyFlag.CLEAR, False, 1, seq * 1000, 11,
                      b"%d" % seq)


def control_types(datagrams: list[bytes]) -> list[int]:
    packets = [parse_packet(d) for d in datagrams]
    return [p.type for p in packets if isinstance(p, ControlPacket)]


def test_shutdown_delivers_what_is_buffered_and_closes() -> None:
    c = connection()
    c.receive(data(0), 0.0)
    c.receive(data(2), 0.0)
    c.receive(ControlPacket(ControlType.SHUTDOWN, 0, 0, 0, 11), 0.01)
    assert c.closed and c.close_reason == "unpublish"
    assert c.take_payloads() == [b"0", b"2"]


def test_idle_peer_times_out_and_keepalives_flow() -> None:
    c = connection()
    c.receive(data(0), 0.0)
    c.take_datagrams()
    c.tick(0.5)
    c.tick(1.6)
    # Repeated full ACKs already tell the caller we are alive; keep-alives fill any gap.
    assert set(control_types(c.take_datagrams())) <= {ControlType.ACK, ControlType.KEEPALIVE}
    c.tick(1.61)
    c.tick(2.7)
    assert control_types(c.take_datagrams())
    c.tick(4.9)
    assert not c.closed
    c.tick(5.0)
    assert c.closed and c.close_reason == "timeout"


def test_repeated_conclusion_gets_the_same_answer() -> None:
    c = connection()
    body = struct.pack(">IHHIIIIII", 5, 0, 7, 0, 1500, 8192, 0xFFFFFFFF, 22, 1) + bytes(16)
    c.receive(ControlPacket(ControlType.HANDSHAKE, 0, 0, 0, 0, body), 0.1)
    assert c.take_datagrams() == [RESPONSE]


def test_key_refresh_is_answered() -> None:
    passphrase = "a passphrase that is long"
    salt = bytes(range(16))
    decryptor = PayloadDecryptor(passphrase, 16)
    kek = derive_kek(passphrase, salt, 16)
    decryptor.accept(KeyMaterial(1, 2, salt, 16, aes_key_wrap(kek, b"e" * 16)).encode())
    c = connection(decryptor)
    fresh = KeyMaterial(3, 2, salt, 16, aes_key_wrap(kek, b"e" * 16 + b"o" * 16)).encode()
    c.receive(ControlPacket(ControlType.USER_DEFINED, UserSubtype.KMREQ, 0, 0, 11, fresh), 0.1)
    (answer,) = [parse_packet(d) for d in c.take_datagrams()]
    assert isinstance(answer, ControlPacket) and answer.subtype == UserSubtype.KMRSP
    assert answer.body == fresh and answer.dest_socket == 22
    wrong = KeyMaterial(1, 2, salt, 16, aes_key_wrap(derive_kek("other one!", salt, 16),
                                                      b"x" * 16)).encode()
    c.receive(ControlPacket(ControlType.USER_DEFINED, UserSubtype.KMREQ, 0, 0, 11, wrong), 0.2)
    (error,) = [parse_packet(d) for d in c.take_datagrams()]
    assert isinstance(error, ControlPacket)
    assert error.body == struct.pack(">I", KmState.BADSECRET)
