"""SRT encryption: the key material (KM) exchange and AES-CTR payload decryption (ingest).

The caller picks the session keys (SEKs), wraps them (RFC 3394) with a key derived
from the passphrase (PBKDF2-HMAC-SHA1 over the low 8 bytes of the KM salt, 2048
rounds) and sends them in KMREQ, at connection time and again whenever it rotates
keys. A listener with the same passphrase can unwrap them; the KMRSP echoes the
message on success. Payloads are AES-CTR with an IV built from the salt and the
packet sequence number (draft-sharabayko-srt section 6).
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from golive.ingest.srt.packet import KeyFlag, SrtError

KM_VERSION = 1
KM_PACKET_TYPE = 2
KM_SIGNATURE = 0x2029
CIPHER_AES_CTR = 2
PBKDF2_ITERATIONS = 2048
_KM_HEADER = struct.Struct(">BHBIBBBBHBB")
_KM_HEADER_SIZE = 16


class KmState(enum.IntEnum):
    """SRT_KM_S_*: sent alone in a KMRSP when the key material was not accepted."""

    UNSECURED = 0
    SECURING = 1
    SECURED = 2
    NOSECRET = 3
    BADSECRET = 4


class BadSecret(Exception):
    """The key material cannot be unwrapped with this passphrase."""


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A KM message: which keys (`keys` as KK bits: 1 even, 2 odd, 3 both), salt, wrapped SEKs."""

    keys: int
    cipher: int
    salt: bytes
    key_length: int
    wrapped: bytes
    keki: int = 0
    auth: int = 0
    stream_encapsulation: int = 2

    @classmethod
    def decode(cls, body: bytes) -> KeyMaterial:
        if len(body) < _KM_HEADER_SIZE:
            raise SrtError("key material message too short")
        (first, sign, keys, keki, cipher, auth, se, _resv2, _resv3, slen, klen) = (
            _KM_HEADER.unpack_from(body))
        if first >> 7 or (first >> 4) & 0x7 != KM_VERSION or first & 0xF != KM_PACKET_TYPE:
            raise SrtError("not a version 1 key material message")
        if sign != KM_SIGNATURE:
            raise SrtError("key material signature mismatch")
        keys &= 0b11
        if keys == 0:
            raise SrtError("key material carries no key")
        salt_len, key_len = slen * 4, klen * 4
        if key_len not in (16, 24, 32) or salt_len == 0:
            raise SrtError(f"unsupported key length {key_len} or salt length {salt_len}")
        count = 2 if keys == 3 else 1
        end = _KM_HEADER_SIZE + salt_len + 8 + count * key_len
        if len(body) < end:
            raise SrtError("key material message truncated")
        salt = bytes(body[_KM_HEADER_SIZE : _KM_HEADER_SIZE + salt_len])
        wrapped = bytes(body[_KM_HEADER_SIZE + salt_len : end])
        return cls(keys, cipher, salt, key_len, wrapped, keki, auth, se)

    def encode(self) -> bytes:
        header = _KM_HEADER.pack(
            (KM_VERSION << 4) | KM_PACKET_TYPE, KM_SIGNATURE, self.keys, self.keki, self.cipher,
            self.auth, self.stream_encapsulation, 0, 0, len(self.salt) // 4, self.key_length // 4)
        return header + self.salt + self.wrapped


@dataclass(frozen=True, slots=True)
class SessionKeys:
    salt: bytes
    even: bytes | None
    odd: bytes | None


def derive_kek(passphrase: str, salt: bytes, key_length: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), salt[-8:], PBKDF2_ITERATIONS,
                               key_length)


def unwrap(km: KeyMaterial, passphrase: str) -> SessionKeys:
    """The session keys in `km`; raises BadSecret when the passphrase does not match."""
    if km.cipher != CIPHER_AES_CTR:
        raise SrtError(f"cipher {km.cipher} is not supported (AES-CTR only)")
    kek = derive_kek(passphrase, km.salt, km.key_length)
    try:
        plain = aes_key_unwrap(kek, km.wrapped)
    except InvalidUnwrap as exc:
        raise BadSecret("wrong passphrase") from exc
    except ValueError as exc:
        raise SrtError(f"malformed wrapped key: {exc}") from exc
    if km.keys == 3:
        return SessionKeys(km.salt, plain[: km.key_length], plain[km.key_length :])
    if km.keys == 1:
        return SessionKeys(km.salt, plain, None)
    return SessionKeys(km.salt, None, plain)


def km_error(state: KmState) -> bytes:
    return struct.pack(">I", state)


def counter_iv(salt: bytes, seq: int) -> bytes:
    """IV for one packet: the salt's first 14 bytes XOR the packet index at bytes 10-13."""
    iv = bytearray(salt[:14].ljust(14, b"\0"))
    for i, b in enumerate(struct.pack(">I", seq)):
        iv[10 + i] ^= b
    return bytes(iv) + b"\0\0"


def ctr_crypt(key: bytes, salt: bytes, seq: int, data: bytes) -> bytes:
    """Encrypt or decrypt (the same in CTR mode) one packet's payload."""
    ctx = Cipher(algorithms.AES(key), modes.CTR(counter_iv(salt, seq))).decryptor()
    return ctx.update(data) + ctx.finalize()


class PayloadDecryptor:
    """Holds the current even/odd session keys and decrypts data packets with them."""

    def __init__(self, passphrase: str, key_length: int) -> None:
        self.passphrase = passphrase
        self.key_length = key_length
        self._salt = b""
        self._keys: dict[KeyFlag, bytes] = {}
        self.undecryptable = 0

    def accept(self, km_body: bytes) -> bytes:
        """Take a KMREQ body; returns the KMRSP body (the echo, or a single error word).

        Raises BadSecret when the passphrase does not match.
        """
        km = KeyMaterial.decode(km_body)
        if self.key_length and km.key_length != self.key_length:
            raise SrtError(f"key length {km.key_length} differs from the advertised "
                           f"{self.key_length}")
        keys = unwrap(km, self.passphrase)
        if keys.salt != self._salt:
            self._keys.clear()
        self._salt = keys.salt
        if keys.even is not None:
            self._keys[KeyFlag.EVEN] = keys.even
        if keys.odd is not None:
            self._keys[KeyFlag.ODD] = keys.odd
        self.key_length = km.key_length
        return km.encode()

    def decrypt(self, seq: int, key: KeyFlag, payload: bytes) -> bytes | None:
        """The clear payload, or None when no key for `key` is known."""
        if key == KeyFlag.CLEAR:
            return payload
        sek = self._keys.get(key)
        if sek is None:
            self.undecryptable += 1
            return None
        return ctr_crypt(sek, self._salt, seq, payload)
