from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from hypothesis import given
from hypothesis import strategies as st

from golive.ingest.srt.crypto import (
    BadSecret,
    KeyMaterial,
    PayloadDecryptor,
    counter_iv,
    ctr_crypt,
    derive_kek,
    unwrap,
)
from golive.ingest.srt.handshake import ExtensionType, Handshake, HandshakeType
from golive.ingest.srt.packet import ControlPacket, KeyFlag, SrtError, parse_packet

# The KMREQ of a conclusion srt-live-transmit 1.5.1 sent with passphrase=0123456789abcdef.
LIBSRT_KM = bytes.fromhex(
    "122029010000000002000200000004042a244e95f73a35f2a99f313f9c6ee46f99f7257665bda2"
    "7c7082979e40c7138443c625f73f400858"
)
SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit")


def test_rfc3394_vectors() -> None:
    # RFC 3394 4.1 (128-bit KEK, 128-bit key) and 4.6 (256-bit KEK, 256-bit key).
    kek = bytes(range(16))
    wrapped = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert aes_key_unwrap(kek, wrapped) == bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    kek = bytes(range(32))
    wrapped = bytes.fromhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43B"
                            "FB988B9B7A02DD21")
    assert aes_key_unwrap(kek, wrapped) == bytes.fromhex(
        "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")


def test_libsrt_key_material_unwraps_with_its_passphrase() -> None:
    km = KeyMaterial.decode(LIBSRT_KM)
    assert (km.keys, km.cipher, km.key_length, len(km.salt)) == (1, 2, 16, 16)
    assert km.encode() == LIBSRT_KM
    keys = unwrap(km, "0123456789abcdef")
    assert keys.even is not None and len(keys.even) == 16 and keys.odd is None
    with pytest.raises(BadSecret):
        unwrap(km, "0123456789abcdeX")


@given(st.sampled_from([16, 24, 32]), st.sampled_from([1, 2, 3]), st.binary(min_size=16,
       max_size=16), st.text(min_size=10, max_size=79))
def test_key_material_round_trip(key_length: int, keys: int, salt: bytes, passphrase: str) -> None:
    count = 2 if keys == 3 else 1
    seks = bytes(range(key_length * count))
    wrapped = aes_key_wrap(derive_kek(passphrase, salt, key_length), seks)
    km = KeyMaterial(keys, 2, salt, key_length, wrapped)
    assert KeyMaterial.decode(km.encode()) == km
    unwrapped = unwrap(km, passphrase)
    assert (unwrapped.even or b"") + (unwrapped.odd or b"") == seks


@given(st.binary(max_size=120))
def test_arbitrary_key_material_raises_only_srt_error(data: bytes) -> None:
    decryptor = PayloadDecryptor("passphrase-long-enough", 0)
    try:
        decryptor.accept(data)
    except (SrtError, BadSecret):
        pass


def test_counter_iv_layout() -> None:
    salt = bytes(range(16))
    iv = counter_iv(salt, 0x01020304)
    assert len(iv) == 16 and iv[14:] == b"\0\0"
    assert iv[:10] == salt[:10]
    assert iv[10:14] == bytes(a ^ b for a, b in zip(salt[10:14], b"\x01\x02\x03\x04", strict=True))


def test_even_and_odd_keys_switch() -> None:
    salt = bytes(16)
    even, odd = b"E" * 16, b"O" * 16
    passphrase = "a passphrase of some length"
    kek = derive_kek(passphrase, salt, 16)
    decryptor = PayloadDecryptor(passphrase, 16)
    answer = decryptor.accept(KeyMaterial(1, 2, salt, 16, aes_key_wrap(kek, even)).encode())
    assert KeyMaterial.decode(answer).keys == 1
    clear = b"\x47" * 1316
    assert decryptor.decrypt(7, KeyFlag.EVEN, ctr_crypt(even, salt, 7, clear)) == clear
    assert decryptor.decrypt(8, KeyFlag.ODD, b"x") is None  # no odd key yet
    decryptor.accept(KeyMaterial(3, 2, salt, 16, aes_key_wrap(kek, even + odd)).encode())
    assert decryptor.decrypt(9, KeyFlag.ODD, ctr_crypt(odd, salt, 9, clear)) == clear
    assert decryptor.decrypt(10, KeyFlag.CLEAR, clear) == clear


@pytest.mark.skipif(SRT_LIVE_TRANSMIT is None, reason="srt-live-transmit (srt-tools) missing")
@pytest.mark.parametrize("pbkeylen", [16, 24, 32])
def test_key_material_from_srt_live_transmit(pbkeylen: int) -> None:
    """A tiny UDP listener answers the induction and records libsrt's conclusion."""
    assert SRT_LIVE_TRANSMIT is not None
    passphrase = "golive-test-passphrase"
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    caller = subprocess.Popen(
        [SRT_LIVE_TRANSMIT, "-q", "file://con",
         f"srt://127.0.0.1:{port}?streamid=k&passphrase={passphrase}&pbkeylen={pbkeylen}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conclusion = None
        while conclusion is None:
            datagram, address = listener.recvfrom(2048)
            packet = parse_packet(datagram)
            assert isinstance(packet, ControlPacket)
            hs = Handshake.decode(packet.body)
            if hs.type == HandshakeType.INDUCTION:
                answer = Handshake(5, 0, 0x4A17, hs.initial_seq, 1500, 8192,
                                   HandshakeType.INDUCTION, 1, 0x1234567, hs.peer_ip)
                listener.sendto(struct.pack(">IIII", 0x80000000, 0, 0, hs.socket_id)
                                + answer.encode(), address)
            elif hs.type == HandshakeType.CONCLUSION:
                conclusion = hs
    finally:
        caller.kill()
        caller.wait()
        listener.close()
    assert conclusion.cookie == 0x1234567
    assert conclusion.encryption == {16: 2, 24: 3, 32: 4}[pbkeylen]
    km_ext = conclusion.extension(ExtensionType.KMREQ)
    assert km_ext is not None
    km = KeyMaterial.decode(km_ext.body)
    assert km.key_length == pbkeylen
    keys = unwrap(km, passphrase)
    assert keys.even is not None and len(keys.even) == pbkeylen
    with pytest.raises(BadSecret):
        unwrap(km, "another-passphrase")
