from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.ingest.srt.handshake import (
    SRT_MAGIC,
    Extension,
    ExtensionType,
    Handshake,
    HandshakeRejected,
    HandshakeType,
    HsReq,
    RejectReason,
    SynCookies,
    conclusion_response,
    decode_ext_string,
    encode_ext_string,
    induction_response,
    ip_field,
    parse_conclusion,
    parse_stream_id,
    rejection,
)
from golive.ingest.srt.packet import ControlPacket, SrtError, parse_packet

# A conclusion that srt-live-transmit 1.5.1 sent as caller with
# streamid=#!::r=abcdefg,m=publish&passphrase=0123456789abcdef&pbkeylen=16.
LIBSRT_CONCLUSION = bytes.fromhex(
    "80000000000000000000041400000000000000050002000704dfa5bd000005dc00002000ffffffff"
    "38b83e1ccafebabe0100007f0000000000000000000000000001000300010501000000bf00780000"
    "000500063a3a212362613d72666564633d6d2c676c627570006873690003000e1220290100000000"
    "02000200000004042a244e95f73a35f2a99f313f9c6ee46f99f7257665bda27c7082979e40c71384"
    "43c625f73f400858"
)

u32 = st.integers(0, 0xFFFFFFFF)
extensions = st.lists(
    st.builds(lambda t, n: (t, n), st.integers(0, 0xFFFF), st.integers(0, 16)), max_size=5)


def _handshake(fields: tuple[int, int, int, int, int, int, int, int, bytes],
               exts: list[tuple[int, int]]) -> Handshake:
    return Handshake(5, *fields, extensions=tuple(_ext(t, n) for t, n in exts))


handshakes = st.builds(
    _handshake,
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), u32, u32, u32, u32, u32, u32,
              st.binary(min_size=16, max_size=16)),
    extensions,
)


def _ext(type: int, words: int) -> Extension:
    return Extension(type, bytes(range(words * 4)))


@given(handshakes)
def test_handshake_round_trip(hs: Handshake) -> None:
    assert Handshake.decode(hs.encode()) == hs


@given(st.binary(max_size=200))
def test_arbitrary_handshakes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        hs = Handshake.decode(data)
    except SrtError:
        return
    try:
        parse_conclusion(hs)
    except (SrtError, HandshakeRejected):
        pass


@given(st.builds(Handshake, st.just(5), st.just(0), st.just(7), u32, st.just(1500),
                 st.just(8192), st.just(int(HandshakeType.CONCLUSION)), u32, u32,
                 st.just(bytes(16)),
                 st.lists(st.builds(_ext, st.integers(1, 8), st.integers(0, 8)),
                          max_size=4).map(tuple)))
def test_conclusions_with_arbitrary_extensions_raise_only_protocol_errors(hs: Handshake) -> None:
    try:
        parse_conclusion(Handshake.decode(hs.encode()))
    except (SrtError, HandshakeRejected):
        pass


@given(st.text(max_size=100).filter(lambda s: "\0" not in s))
def test_extension_strings_round_trip(text: str) -> None:
    assert decode_ext_string(encode_ext_string(text)) == text


def test_libsrt_conclusion_parses() -> None:
    packet = parse_packet(LIBSRT_CONCLUSION)
    assert isinstance(packet, ControlPacket) and packet.dest_socket == 0
    hs = Handshake.decode(packet.body)
    assert hs.type == HandshakeType.CONCLUSION and hs.cookie == 0xCAFEBABE
    assert hs.peer_ip == ip_field("127.0.0.1")
    request = parse_conclusion(hs)
    assert request.stream.key == "abcdefg" and request.stream_id == "#!::r=abcdefg,m=publish"
    assert request.latency_ms == 120
    assert request.key_length == 16 and request.key_material is not None
    assert request.key_material[:4].hex() == "12202901"
    assert request.initial_seq == hs.initial_seq


def test_stream_id_forms() -> None:
    assert parse_stream_id("key123").key == "key123"
    assert parse_stream_id("#!::r=key123,m=publish").key == "key123"
    assert parse_stream_id("#!::u=alice,r=key123").user == "alice"
    with pytest.raises(HandshakeRejected) as bad_mode:
        parse_stream_id("#!::r=key123,m=request")
    assert bad_mode.value.reason == RejectReason.X_BAD_MODE
    for bad in ("", "#!::m=publish", "#!::r"):
        with pytest.raises(HandshakeRejected) as rejected:
            parse_stream_id(bad)
        assert rejected.value.reason == RejectReason.X_BAD_REQUEST


def test_stream_id_wire_form_reverses_each_word() -> None:
    assert encode_ext_string("#!::r=ab") == b"::!#ba=r"
    assert encode_ext_string("abcde") == b"dcba\0\0\0e"


def test_induction_answer_carries_magic_and_cookie() -> None:
    request = Handshake(4, 0, 2, 77, 1500, 8192, HandshakeType.INDUCTION, 1234, 0)
    answer = induction_response(request, cookie=0xDEADBEEF, peer_ip=ip_field("10.0.0.1"))
    assert answer.version == 5 and answer.extension_field == SRT_MAGIC
    assert answer.cookie == 0xDEADBEEF and answer.type == HandshakeType.INDUCTION


def test_conclusion_answer_and_rejection() -> None:
    hs = Handshake.decode(parse_packet(LIBSRT_CONCLUSION).body)  # type: ignore[union-attr]
    answer = conclusion_response(hs, socket_id=42, latency_ms=200, flow_window=8192, mtu=1500,
                                 peer_ip=hs.peer_ip, km_response=b"\0" * 8, encrypted=True)
    decoded = Handshake.decode(answer.encode())
    hsrsp = decoded.extension(ExtensionType.HSRSP)
    assert hsrsp is not None
    assert HsReq.decode(hsrsp.body).receiver_delay_ms == 200
    assert decoded.extension(ExtensionType.KMRSP) is not None
    assert decoded.socket_id == 42 and decoded.type == HandshakeType.CONCLUSION
    rejected = rejection(hs, RejectReason.BADSECRET, peer_ip=hs.peer_ip)
    assert rejected.type == 1010
    assert rejection(hs, RejectReason.X_FORBIDDEN, peer_ip=hs.peer_ip).type == 2403


def test_conclusion_checks() -> None:
    hs = Handshake.decode(parse_packet(LIBSRT_CONCLUSION).body)  # type: ignore[union-attr]
    with pytest.raises(HandshakeRejected) as old:
        parse_conclusion(Handshake(4, *[getattr(hs, f) for f in (
            "encryption", "extension_field", "initial_seq", "mtu", "flow_window", "type",
            "socket_id", "cookie", "peer_ip")]))
    assert old.value.reason == RejectReason.VERSION
    no_hsreq = Handshake(5, 0, 0, 1, 1500, 8192, HandshakeType.CONCLUSION, 1, 1)
    with pytest.raises(HandshakeRejected):
        parse_conclusion(no_hsreq)


def test_cookies_bind_address_and_time() -> None:
    cookies = SynCookies(b"secret", bucket_seconds=60)
    cookie = cookies.make("1.2.3.4:5000", 100.0)
    assert cookies.check("1.2.3.4:5000", cookie, 130.0)
    assert cookies.check("1.2.3.4:5000", cookie, 170.0)  # the previous bucket still counts
    assert not cookies.check("1.2.3.4:5000", cookie, 250.0)
    assert not cookies.check("1.2.3.4:5001", cookie, 130.0)
