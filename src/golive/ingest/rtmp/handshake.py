"""The server side of the RTMP handshake (ingest, sans-IO).

C0+C1 in, S0+S1+S2 out, then C2 in. golive answers with the plain handshake:
S1 carries a zero version field, which tells clients that speak the digest
("complex") handshake — ffmpeg, librtmp (OBS), GStreamer — not to look for a
server digest, so every publisher we know accepts it. S2 echoes C1 as the
spec asks. Only version 3 (plain RTMP) is accepted; RTMPE/RTMPT are refused.
"""

from __future__ import annotations

import enum
import os

HANDSHAKE_SIZE = 1536
RTMP_VERSION = 3


class HandshakeError(ValueError):
    pass


class HandshakeState(enum.Enum):
    WAIT_C0C1 = "wait_c0c1"
    WAIT_C2 = "wait_c2"
    DONE = "done"


class ServerHandshake:
    def __init__(self, *, epoch_ms: int = 0, random_bytes: bytes | None = None) -> None:
        self.state = HandshakeState.WAIT_C0C1
        self._buffer = bytearray()
        self._epoch = epoch_ms & 0xFFFFFFFF
        self._random = random_bytes if random_bytes is not None else os.urandom(1528)
        if len(self._random) != 1528:
            raise ValueError("S1 random part must be 1528 bytes")

    def receive_data(self, data: bytes) -> tuple[bytes, bytes]:
        """Feed bytes; returns (bytes to send, bytes that follow the handshake)."""
        self._buffer += data
        out = b""
        if self.state is HandshakeState.WAIT_C0C1 and len(self._buffer) >= 1 + HANDSHAKE_SIZE:
            version = self._buffer[0]
            if version != RTMP_VERSION:
                raise HandshakeError(
                    f"RTMP version {version} not supported (only plain RTMP, version 3)"
                )
            c1 = bytes(self._buffer[1 : 1 + HANDSHAKE_SIZE])
            del self._buffer[: 1 + HANDSHAKE_SIZE]
            s1 = self._epoch.to_bytes(4, "big") + b"\x00\x00\x00\x00" + self._random
            # S2 echoes C1: its time, then the time we read it (we use ours), then C1's random.
            s2 = c1[:4] + self._epoch.to_bytes(4, "big") + c1[8:]
            out = bytes((RTMP_VERSION,)) + s1 + s2
            self.state = HandshakeState.WAIT_C2
        elif self.state is HandshakeState.WAIT_C0C1 and self._buffer and \
                self._buffer[0] != RTMP_VERSION:
            raise HandshakeError(
                f"RTMP version {self._buffer[0]} not supported (only plain RTMP, version 3)"
            )
        if self.state is HandshakeState.WAIT_C2 and len(self._buffer) >= HANDSHAKE_SIZE:
            # C2 should echo S1; clients differ in what they put there, so it is not checked.
            del self._buffer[:HANDSHAKE_SIZE]
            self.state = HandshakeState.DONE
            rest = bytes(self._buffer)
            self._buffer.clear()
            return out, rest
        return out, b""

    @property
    def done(self) -> bool:
        return self.state is HandshakeState.DONE
