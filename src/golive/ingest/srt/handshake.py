"""SRT handshake v5, listener side: induction, conclusion and its extensions (ingest).

The caller sends INDUCTION; the listener answers with version 5, the SRT magic and
a SYN cookie bound to the caller's address, so it keeps no state for callers that
never come back. The caller's CONCLUSION carries the cookie and the extensions:
HSREQ (flags, TSBPD latency), SID (the stream id: the stream key, bare or as
`#!::r=KEY,m=publish`) and KMREQ (key material when the caller has a passphrase).
`parse_conclusion` turns it into a `ConclusionRequest` or a `HandshakeRejected`
with the SRT rejection reason that goes back in the handshake type field.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass, field

from golive.ingest.srt.packet import SrtError, words

HANDSHAKE_SIZE = 48
SRT_MAGIC = 0x4A17
SRT_VERSION = 0x010501  # the libsrt version whose behaviour this follows
MAX_STREAM_ID = 512
REJECTION_BASE = 1000  # handshake type = 1000 + rejection reason

_CIF = struct.Struct(">IHHIIIIII16s")


class HandshakeType(enum.IntEnum):
    DONE = 0xFFFFFFFD
    AGREEMENT = 0xFFFFFFFE
    CONCLUSION = 0xFFFFFFFF
    WAVEAHAND = 0x00000000
    INDUCTION = 0x00000001


class RejectReason(enum.IntEnum):
    """SRT_REJ_* (0-99) and the extended SRT_REJX_* codes (1000 + HTTP-like status)."""

    UNKNOWN = 0
    SYSTEM = 1
    PEER = 2
    RESOURCE = 3
    ROGUE = 4
    BACKLOG = 5
    IPE = 6
    CLOSE = 7
    VERSION = 8
    RDVCOOKIE = 9
    BADSECRET = 10
    UNSECURE = 11
    MESSAGEAPI = 12
    CONGESTION = 13
    FILTER = 14
    GROUP = 15
    TIMEOUT = 16
    X_BAD_REQUEST = 1400
    X_UNAUTHORIZED = 1401
    X_OVERLOAD = 1402
    X_FORBIDDEN = 1403
    X_NOTFOUND = 1404
    X_BAD_MODE = 1405
    X_CONFLICT = 1409
    X_ISE = 1500
    X_UNAVAILABLE = 1503


class ExtensionType(enum.IntEnum):
    HSREQ = 1
    HSRSP = 2
    KMREQ = 3
    KMRSP = 4
    SID = 5
    CONGESTION = 6
    FILTER = 7
    GROUP = 8


class ExtensionFlag(enum.IntFlag):
    """Bits of the handshake's extension field in a v5 conclusion."""

    HSREQ = 0x1
    KMREQ = 0x2
    CONFIG = 0x4


class SrtFlag(enum.IntFlag):
    """Capability flags in HSREQ/HSRSP."""

    TSBPDSND = 0x01
    TSBPDRCV = 0x02
    CRYPT = 0x04
    TLPKTDROP = 0x08
    PERIODICNAK = 0x10
    REXMITFLG = 0x20
    STREAM = 0x40
    PACKET_FILTER = 0x80


class HandshakeRejected(Exception):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Extension:
    type: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Handshake:
    version: int
    encryption: int
    extension_field: int
    initial_seq: int
    mtu: int
    flow_window: int
    type: int
    socket_id: int
    cookie: int
    peer_ip: bytes = bytes(16)
    extensions: tuple[Extension, ...] = field(default=())

    def encode(self) -> bytes:
        out = [_CIF.pack(self.version, self.encryption, self.extension_field, self.initial_seq,
                         self.mtu, self.flow_window, self.type, self.socket_id, self.cookie,
                         self.peer_ip)]
        for ext in self.extensions:
            if len(ext.body) % 4:
                raise SrtError("handshake extension body must be whole words")
            out.append(struct.pack(">HH", ext.type, len(ext.body) // 4) + ext.body)
        return b"".join(out)

    @classmethod
    def decode(cls, body: bytes) -> Handshake:
        if len(body) < HANDSHAKE_SIZE:
            raise SrtError(f"handshake of {len(body)} bytes, need {HANDSHAKE_SIZE}")
        (version, encryption, ext_field, initial_seq, mtu, flow_window, hs_type, socket_id,
         cookie, peer_ip) = _CIF.unpack_from(body)
        extensions: list[Extension] = []
        offset = HANDSHAKE_SIZE
        # Only v5 handshakes carry extensions; older ones may have trailing junk.
        while version == 5 and offset + 4 <= len(body):
            ext_type, size = struct.unpack_from(">HH", body, offset)
            end = offset + 4 + size * 4
            if end > len(body):
                raise SrtError("handshake extension runs past the packet")
            extensions.append(Extension(ext_type, bytes(body[offset + 4 : end])))
            offset = end
        return cls(version, encryption, ext_field, initial_seq, mtu, flow_window, hs_type,
                   socket_id, cookie, peer_ip, tuple(extensions))

    def extension(self, type: ExtensionType) -> Extension | None:
        for ext in self.extensions:
            if ext.type == type:
                return ext
        return None


@dataclass(frozen=True, slots=True)
class HsReq:
    """HSREQ/HSRSP body. The upper half of the delay word is the receiver's TSBPD delay."""

    version: int
    flags: int
    receiver_delay_ms: int
    sender_delay_ms: int

    def encode(self) -> bytes:
        delays = ((self.receiver_delay_ms & 0xFFFF) << 16) | (self.sender_delay_ms & 0xFFFF)
        return struct.pack(">III", self.version, self.flags, delays)

    @classmethod
    def decode(cls, body: bytes) -> HsReq:
        values = words(body, "HSREQ")
        if len(values) < 3:
            raise SrtError("HSREQ shorter than three words")
        return cls(values[0], values[1], values[2] >> 16, values[2] & 0xFFFF)


# Strings in extensions (stream id, congestion, filter) -----------------------------------
# libsrt copies the string into 32-bit words in host order and sends the words in
# network order, so on the wire every group of four bytes is reversed.


def encode_ext_string(text: str) -> bytes:
    raw = text.encode()
    raw += bytes(-len(raw) % 4)
    return b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))


def decode_ext_string(body: bytes) -> str:
    if len(body) % 4:
        raise SrtError("string extension is not a whole number of words")
    raw = b"".join(body[i : i + 4][::-1] for i in range(0, len(body), 4)).rstrip(b"\0")
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise SrtError("string extension is not UTF-8") from exc


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What the stream id asks for: publish `key` (golive only accepts publishing)."""

    key: str
    mode: str = "publish"
    user: str | None = None


def parse_stream_id(stream_id: str) -> StreamRequest:
    """A bare stream key, or the access-control form `#!::r=KEY,m=publish[,u=USER,...]`."""
    if not stream_id.startswith("#!::"):
        key = stream_id.strip()
        if not key:
            raise HandshakeRejected(RejectReason.X_BAD_REQUEST, "empty stream id")
        return StreamRequest(key)
    values: dict[str, str] = {}
    for item in stream_id[4:].split(","):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            # The item may be the key itself (`#!::KEY`): the message must not quote it.
            raise HandshakeRejected(RejectReason.X_BAD_REQUEST, "a stream id item has no '='")
        values[name.strip()] = value.strip()
    key = values.get("r", "")
    if not key:
        raise HandshakeRejected(RejectReason.X_BAD_REQUEST, "stream id names no resource (r=)")
    mode = values.get("m", "publish")
    if mode != "publish":
        raise HandshakeRejected(RejectReason.X_BAD_MODE,
                                f"mode {mode[:16]!r} is not accepted, only publish")
    return StreamRequest(key, mode, values.get("u"))


# SYN cookies -----------------------------------------------------------------------------


class SynCookies:
    """Cookies from HMAC(secret, peer address, time bucket); the previous bucket stays valid."""

    def __init__(self, secret: bytes, bucket_seconds: float = 60.0) -> None:
        self._secret = secret
        self._bucket = bucket_seconds

    def make(self, peer: str, now: float, *, previous: bool = False) -> int:
        bucket = int(now // self._bucket) - int(previous)
        digest = hmac.new(self._secret, f"{peer}|{bucket}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:4], "big")

    def check(self, peer: str, cookie: int, now: float) -> bool:
        return cookie in (self.make(peer, now), self.make(peer, now, previous=True))


# Listener side ---------------------------------------------------------------------------


def ip_field(host: str) -> bytes:
    """The peer IP field as libsrt writes it: the address bytes, each word reversed."""
    raw = ipaddress.ip_address(host.split("%")[0]).packed
    raw += bytes(16 - len(raw))
    return b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))


def induction_response(request: Handshake, *, cookie: int, peer_ip: bytes) -> Handshake:
    return Handshake(
        version=5, encryption=0, extension_field=SRT_MAGIC, initial_seq=request.initial_seq,
        mtu=request.mtu, flow_window=request.flow_window, type=HandshakeType.INDUCTION,
        socket_id=cookie & 0x7FFFFFFF or 1, cookie=cookie, peer_ip=peer_ip,
    )


@dataclass(frozen=True, slots=True)
class ConclusionRequest:
    """A caller's validated conclusion: what it wants and what it offers."""

    peer_socket: int
    initial_seq: int
    mtu: int
    flow_window: int
    stream: StreamRequest
    stream_id: str
    flags: int
    latency_ms: int  # the larger of the caller's two TSBPD delays
    key_material: bytes | None
    key_length: int  # 16/24/32 advertised in the encryption field, 0 when none


def parse_conclusion(hs: Handshake) -> ConclusionRequest:
    """Validate a caller's v5 conclusion; raises HandshakeRejected (or SrtError when garbled)."""
    if hs.version != 5:
        raise HandshakeRejected(RejectReason.VERSION, f"handshake version {hs.version}, need 5")
    if hs.type != HandshakeType.CONCLUSION:
        raise HandshakeRejected(RejectReason.ROGUE, "not a conclusion")
    hsreq_ext = hs.extension(ExtensionType.HSREQ)
    if hsreq_ext is None:
        raise HandshakeRejected(RejectReason.ROGUE, "conclusion without HSREQ")
    hsreq = HsReq.decode(hsreq_ext.body)
    if hsreq.flags & SrtFlag.STREAM:
        raise HandshakeRejected(RejectReason.MESSAGEAPI, "stream (file) mode is not supported")
    for ext in hs.extensions:
        if ext.type == ExtensionType.CONGESTION and decode_ext_string(ext.body) not in ("", "live"):
            raise HandshakeRejected(RejectReason.CONGESTION, "only live congestion control")
        if ext.type == ExtensionType.FILTER:
            raise HandshakeRejected(RejectReason.FILTER, "packet filters (FEC) are not supported")
        if ext.type == ExtensionType.GROUP:
            raise HandshakeRejected(RejectReason.GROUP, "socket groups are not supported")
    sid_ext = hs.extension(ExtensionType.SID)
    stream_id = decode_ext_string(sid_ext.body) if sid_ext is not None else ""
    if len(stream_id) > MAX_STREAM_ID:
        raise HandshakeRejected(RejectReason.X_BAD_REQUEST, "stream id too long")
    stream = parse_stream_id(stream_id)
    km_ext = hs.extension(ExtensionType.KMREQ)
    key_length = {0: 0, 2: 16, 3: 24, 4: 32}.get(hs.encryption)
    if key_length is None:
        raise HandshakeRejected(RejectReason.ROGUE, f"unknown encryption field {hs.encryption}")
    if hs.mtu < 76 or hs.flow_window < 32:
        raise HandshakeRejected(RejectReason.ROGUE, "MTU or flow window too small")
    return ConclusionRequest(
        peer_socket=hs.socket_id,
        initial_seq=hs.initial_seq & 0x7FFFFFFF,
        mtu=hs.mtu,
        flow_window=hs.flow_window,
        stream=stream,
        stream_id=stream_id,
        flags=hsreq.flags,
        latency_ms=max(hsreq.receiver_delay_ms, hsreq.sender_delay_ms),
        key_material=km_ext.body if km_ext is not None else None,
        key_length=key_length,
    )


def conclusion_response(
    request: Handshake,
    *,
    socket_id: int,
    latency_ms: int,
    flow_window: int,
    mtu: int,
    peer_ip: bytes,
    km_response: bytes | None,
    encrypted: bool,
) -> Handshake:
    flags = (SrtFlag.TSBPDSND | SrtFlag.TSBPDRCV | SrtFlag.TLPKTDROP | SrtFlag.PERIODICNAK
             | SrtFlag.REXMITFLG)
    if encrypted:
        flags |= SrtFlag.CRYPT
    # The caller reads whichever delay its direction uses; both carry the agreed latency.
    extensions = [Extension(ExtensionType.HSRSP,
                            HsReq(SRT_VERSION, int(flags), latency_ms, latency_ms).encode())]
    ext_field = ExtensionFlag.HSREQ
    if km_response is not None:
        extensions.append(Extension(ExtensionType.KMRSP, km_response))
        ext_field |= ExtensionFlag.KMREQ
    return Handshake(
        version=5, encryption=0, extension_field=int(ext_field), initial_seq=request.initial_seq,
        mtu=min(mtu, request.mtu), flow_window=flow_window, type=HandshakeType.CONCLUSION,
        socket_id=socket_id, cookie=request.cookie, peer_ip=peer_ip, extensions=tuple(extensions),
    )


def rejection(request: Handshake, reason: RejectReason, *, peer_ip: bytes) -> Handshake:
    return Handshake(
        version=5, encryption=0, extension_field=0, initial_seq=request.initial_seq,
        mtu=request.mtu, flow_window=request.flow_window, type=REJECTION_BASE + int(reason),
        socket_id=0, cookie=request.cookie, peer_ip=peer_ip,
    )
