"""Test helpers for SRT: a fake publish target, a lossy UDP proxy, a raw handshake caller."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from golive.formats.tag import MediaTag
from golive.ingest.srt.handshake import (
    Extension,
    ExtensionType,
    Handshake,
    HandshakeType,
    HsReq,
    encode_ext_string,
)
from golive.ingest.srt.packet import (
    ControlPacket,
    ControlType,
    DataPacket,
    KeyFlag,
    Position,
    parse_packet,
)
from golive.stream.publish import PublishRefused, RefusalReason

NULL_TS_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184


@dataclass
class FakePublisher:
    stream_id: str
    broadcast_id: str = "b1"
    webrtc_playback: bool = False
    tags: list[MediaTag] = field(default_factory=list)
    closed: str | None = None

    def push(self, tag: MediaTag) -> None:
        self.tags.append(tag)

    def close(self, reason: str) -> None:
        self.closed = reason


class FakeTarget:
    """Accepts the keys in `keys`; remembers every publisher it opened."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = keys
        self.publishers: list[FakePublisher] = []
        self.opened = asyncio.Event()

    async def open_publisher(self, stream_key: str, *, protocol: str, remote_address: str,
                             disconnect: object = None) -> FakePublisher:
        assert protocol == "srt"
        if stream_key not in self.keys:
            raise PublishRefused(RefusalReason.UNKNOWN_KEY, "unknown stream key")
        # The hub's stream id is not the key (logs may name the one, never the other).
        publisher = FakePublisher(f"ls_{len(self.publishers) + 1}")
        self.publishers.append(publisher)
        self.opened.set()
        return publisher


class LossyProxy(asyncio.DatagramProtocol):
    """Forwards one caller to the server with a fixed delay, dropping some packets.

    Data packets (caller to server) and ACK/NAK/ACKACK and other control packets (both
    ways) are dropped at random with probability `loss`, and in bursts: with probability
    `burst_start` a run of `burst_length` packets goes. Handshakes always pass, so the
    connection setup stays deterministic.
    """

    def __init__(self, server: tuple[str, int], *, loss: float = 0.0, burst_start: float = 0.0,
                 burst_length: int = 5, delay: float = 0.0, seed: int = 1) -> None:
        self.server = server
        self.loss = loss
        self.burst_start = burst_start
        self.burst_length = burst_length
        self.delay = delay
        self.random = random.Random(seed)
        self.caller: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._burst = 0
        self.data_forwarded = 0
        self.originals_dropped = 0
        self.retransmissions_dropped = 0
        self.control_dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from_server = addr == self.server
        if not from_server:
            self.caller = addr
        target = self.caller if from_server else self.server
        if target is None or len(data) < 16:  # shorter than any SRT header
            return
        is_data = not data[0] & 0x80
        is_handshake = data[:2] == b"\x80\x00"
        if not is_handshake and self._drop():
            if is_data:
                if data[4] & 0x04:  # the R flag
                    self.retransmissions_dropped += 1
                else:
                    self.originals_dropped += 1
            else:
                self.control_dropped += 1
            return
        if is_data:
            self.data_forwarded += 1
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, self._send, data, target)

    def _drop(self) -> bool:
        if self._burst > 0:
            self._burst -= 1
            return True
        x = self.random.random()
        if x < self.burst_start:
            self._burst = self.burst_length - 1
            return True
        return x < self.burst_start + self.loss

    def _send(self, data: bytes, target: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, target)

    @property
    def data_drop_rate(self) -> float:
        dropped = self.originals_dropped + self.retransmissions_dropped
        return dropped / max(1, dropped + self.data_forwarded)


class RawCaller(asyncio.DatagramProtocol):
    """A minimal SRT caller built on golive's own codec: enough to read rejection codes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


def induction_datagram(socket_id: int) -> bytes:
    """An induction as libsrt callers send it (handshake version 4)."""
    hs = Handshake(4, 0, 2, 1000, 1500, 8192, HandshakeType.INDUCTION, socket_id, 0)
    return struct.pack(">IIII", 0x80000000, 0, 1000, 0) + hs.encode()


async def raw_handshake(port: int, stream_id: str, *, socket_id: int = 0x1234,
                        km: bytes | None = None, encryption: int = 0) -> Handshake:
    """Induction then conclusion; returns the listener's answer to the conclusion."""
    async with raw_connection(port, stream_id, socket_id=socket_id, km=km,
                              encryption=encryption) as (_, _, answer):
        return answer


@contextlib.asynccontextmanager
async def raw_connection(port: int, stream_id: str, *, socket_id: int = 0x1234,
                         km: bytes | None = None, encryption: int = 0,
                         source: str = "127.0.0.1",
                         ) -> AsyncIterator[tuple[asyncio.DatagramTransport, RawCaller,
                                                  Handshake]]:
    """Induction then conclusion from `source` on a socket kept open while the block runs:
    yields it, its protocol (what arrives later queues there) and the listener's answer
    to the conclusion (the caller's first data packet is seq 1000)."""
    loop = asyncio.get_running_loop()
    transport, caller = await loop.create_datagram_endpoint(
        RawCaller, local_addr=(source, 0), remote_addr=("127.0.0.1", port))
    try:
        def send(hs: Handshake) -> None:
            transport.sendto(struct.pack(">IIII", 0x80000000, 0, 1000, 0) + hs.encode())

        async def answer() -> Handshake:
            while True:
                packet = parse_packet(await asyncio.wait_for(caller.queue.get(), 5))
                assert isinstance(packet, ControlPacket)
                if packet.type == ControlType.HANDSHAKE:
                    return Handshake.decode(packet.body)

        transport.sendto(induction_datagram(socket_id))
        induction = await answer()
        exts = [Extension(ExtensionType.HSREQ, HsReq(0x010501, 0xBF, 120, 120).encode()),
                Extension(ExtensionType.SID, encode_ext_string(stream_id))]
        if km is not None:
            exts.append(Extension(ExtensionType.KMREQ, km))
        send(Handshake(5, encryption, 7, 1000, 1500, 8192, HandshakeType.CONCLUSION, socket_id,
                       induction.cookie, extensions=tuple(exts)))
        yield transport, caller, await answer()
    finally:
        transport.close()


def null_packets(n: int, elapsed: float, dest_socket: int) -> bytes:
    """The `n`th data packet of a caller that sends seven TS null packets (no media) each
    time, `elapsed` seconds after its handshake (first seq 1000, as `raw_connection`)."""
    return DataPacket(1000 + n, Position.SOLO, False, KeyFlag.CLEAR, False, 1 + n,
                      int(elapsed * 1e6), dest_socket, NULL_TS_PACKET * 7).encode()


def ts_continuity_errors(data: bytes) -> int:
    """Continuity-counter breaks in a transport stream (0 for a complete one)."""
    last: dict[int, int] = {}
    errors = 0
    for i in range(0, len(data) - 187, 188):
        packet = data[i : i + 188]
        if packet[0] != 0x47:
            errors += 1
            continue
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid == 0x1FFF or not packet[3] & 0x10:
            continue
        cc = packet[3] & 0x0F
        if pid in last and cc != (last[pid] + 1) % 16 and cc != last[pid]:
            errors += 1
        last[pid] = cc
    return errors
