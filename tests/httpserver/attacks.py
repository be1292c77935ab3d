"""Hostile HTTP and WebSocket clients, for the tests and bench/hostile.py.

Each attack sends what the findings describe (huge heads, heads that never finish,
huge bodies, huge WebSocket frames, bodies that trickle in; chat socket and frame
floods, WHEP offers that never connect, QoE beacons with fresh view ids, token and
login guessing), stops as soon as the server answers or hangs up, never sends more
than its byte budget, and returns what the server did. The attacker's own memory
stays small: payload is one reused chunk.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import os
import re
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Any

import httpx

CHUNK = b"a" * (64 * 1024)
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


@dataclass
class Outcome:
    """What the server did: its status (0: none), a WebSocket close code, bytes we got out."""

    status: int = 0
    close_code: int | None = None
    sent: int = 0
    closed: bool = False  # the server hung up


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])  # type: ignore[index]


async def _stream(port: int, head: bytes, payload: bytes, budget: int,
                  answer_timeout: float = 30.0) -> Outcome:
    """Send `head`, then `payload` repeatedly up to `budget` bytes, until the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    outcome = Outcome()
    answer = asyncio.create_task(reader.read(64 * 1024))
    try:
        writer.write(head)
        outcome.sent = len(head)
        while outcome.sent < budget and not answer.done():
            writer.write(payload)
            outcome.sent += len(payload)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                break
        data = await asyncio.wait_for(answer, answer_timeout)
    except (ConnectionError, OSError):
        data = answer.result() if answer.done() and not answer.exception() else b""
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    match = _STATUS.match(data)
    outcome.status = int(match[1]) if match else 0
    outcome.closed = True
    return outcome


async def huge_head(port: int, budget: int, path: str = "/healthz") -> Outcome:
    """One request whose one header value never ends (up to `budget` bytes)."""
    head = f"GET {path} HTTP/1.1\r\nHost: golive\r\nX-Padding: ".encode()
    return await _stream(port, head, CHUNK, budget)


async def huge_body(port: int, path: str, budget: int, *, declared: int | None,
                    content_type: str = "application/json") -> Outcome:
    """A POST streaming up to `budget` body bytes: with Content-Length `declared`, else chunked."""
    framing = (f"Content-Length: {declared}" if declared is not None
               else "Transfer-Encoding: chunked")
    head = (f"POST {path} HTTP/1.1\r\nHost: golive\r\nContent-Type: {content_type}\r\n"
            f"{framing}\r\n\r\n").encode()
    payload = CHUNK if declared is not None else b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    return await _stream(port, head, payload, budget)


async def trickled_body(port: int, path: str, declared: int, interval: float,
                        timeout: float = 60.0) -> Outcome:
    """A POST announcing `declared` body bytes, then sending one every `interval` seconds
    until the server answers or hangs up (at most `timeout` seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    outcome = Outcome()
    writer.write((f"POST {path} HTTP/1.1\r\nHost: golive\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {declared}\r\n\r\n").encode())

    async def trickle() -> None:
        while outcome.sent < declared - 1:  # never the whole body
            await asyncio.sleep(interval)
            writer.write(b" ")
            outcome.sent += 1
            await writer.drain()

    sender = asyncio.create_task(trickle())
    try:
        data = await asyncio.wait_for(reader.read(), timeout)  # the answer, up to the close
        outcome.closed = True
    except (ConnectionError, OSError, TimeoutError):
        data = b""
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    match = _STATUS.match(data)
    outcome.status = int(match[1]) if match else 0
    return outcome


class SlowHeads:
    """`count` connections that each send half a request head and then nothing."""

    def __init__(self, port: int, count: int, path: str = "/healthz", *,
                 source: str = "127.0.0.1") -> None:
        self.port = port
        self.count = count
        self.path = path
        self.source = source
        self.outcomes: list[Outcome] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for _ in range(self.count):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                           local_addr=(self.source, 0))
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: golive\r\nX-Slow: ".encode())
            outcome = Outcome(sent=1)
            self.outcomes.append(outcome)
            self._tasks.append(asyncio.create_task(self._hold(reader, writer, outcome)))

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    outcome: Outcome) -> None:
        try:
            data = await reader.read()  # until the server hangs up
            match = _STATUS.match(data)
            outcome.status = int(match[1]) if match else 0
        except (ConnectionError, OSError):
            pass
        finally:
            outcome.closed = True
            writer.close()

    @property
    def open(self) -> int:
        return sum(1 for o in self.outcomes if not o.closed)

    async def all_closed(self, timeout: float) -> None:
        """Wait until the server has closed every connection (TimeoutError otherwise)."""
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)

    async def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def connection_flood(port: int, count: int, *, source: str,
                           hold: float = 2.0) -> collections.Counter[str]:
    """`count` connections from `source` that send nothing, each kept `hold` seconds: how
    many the server left "open" and how many it "closed" (or refused to connect)."""
    results: collections.Counter[str] = collections.Counter()
    writers: list[asyncio.StreamWriter] = []
    ends: list[asyncio.Task[bytes]] = []
    try:
        for _ in range(count):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               local_addr=(source, 0))
            except (ConnectionError, OSError):
                results["closed"] += 1
                continue
            writers.append(writer)
            ends.append(asyncio.create_task(reader.read()))
        if ends:
            await asyncio.wait(ends, timeout=hold)
        for end in ends:
            results["closed" if end.done() else "open"] += 1
        return results
    finally:
        for end in ends:
            end.cancel()
        await asyncio.gather(*ends, return_exceptions=True)
        for writer in writers:
            writer.close()


async def huge_ws_frame(port: int, path: str, size: int, budget: int) -> Outcome:
    """Open a WebSocket and send one text frame announcing `size` bytes, up to `budget` of them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    outcome = Outcome()
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: golive\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        match = _STATUS.match(head)
        outcome.status = int(match[1]) if match else 0
        if outcome.status != 101:
            return outcome
        # FIN + text, masked, 64-bit length, an all-zero mask: the payload goes as is.
        writer.write(struct.pack("!BBQ", 0x81, 0x80 | 127, size) + b"\0\0\0\0")
        close = asyncio.create_task(_close_code(reader))
        while outcome.sent < min(size, budget) and not close.done():
            writer.write(CHUNK)
            outcome.sent += len(CHUNK)
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                break
        with contextlib.suppress(ConnectionError, OSError):
            outcome.close_code = await asyncio.wait_for(close, 30)
        outcome.closed = True
        return outcome
    finally:
        writer.close()


def ws_frame_then_read(port: int, path: str, size: int, timeout: float = 30.0, *,
                       source: str = "127.0.0.1", pause: float = 0.0) -> Outcome:
    """A blocking client that writes one whole `size`-byte text frame, then reads the answer.

    Like a client that writes a message before it reads: it sees the server's close
    frame only if the server let it finish writing (no reset on the way). `pause`: seconds
    between its 64 KiB writes (a slow link, or a client the machine's load holds back).
    """
    outcome = Outcome()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: golive\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        stream = sock.makefile("rb")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = stream.readline()
            if not line:
                return outcome
            head += line
        match = _STATUS.match(head)
        outcome.status = int(match[1]) if match else 0
        if outcome.status != 101:
            return outcome
        try:
            sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, size) + b"\0\0\0\0")
            while outcome.sent < size:
                sock.sendall(CHUNK[:size - outcome.sent])
                outcome.sent += min(len(CHUNK), size - outcome.sent)
                if pause:
                    time.sleep(pause)
            while True:  # server frames until its close frame
                first, second = stream.read(2)
                length = second & 0x7F
                if length >= 126:
                    extra = stream.read(2 if length == 126 else 8)
                    length = int.from_bytes(extra, "big")
                payload = stream.read(length)
                if first & 0x0F == 0x8:
                    outcome.close_code = int.from_bytes(payload[:2], "big") or None
                    break
        except (OSError, ValueError):
            pass  # reset on the way: no close code
        outcome.closed = True
        return outcome


async def _close_code(reader: asyncio.StreamReader) -> int | None:
    """Read server frames until a close frame; its status code (None if the socket just ends)."""
    while True:
        try:
            first, second = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return None
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM (peak resident memory) again from the current RSS (Linux clear_refs 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss_kib(pid: int) -> int:
    """Peak resident memory (VmHWM) since the last `reset_peak_rss`, KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read())[1])  # type: ignore[index]


# Chat, WHEP, QoE and guessing floods (bench/hostile.py; tests aim the same requests) ----


def _ws_head(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: golive\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def client_text_frame(payload: bytes) -> bytes:
    """One masked client text frame (an all-zero mask: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, 0x80 | n) + b"\0\0\0\0" + payload
    return struct.pack("!BBH", 0x81, 0x80 | 126, n) + b"\0\0\0\0" + payload


async def open_ws(port: int, path: str, *, source: str
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A WebSocket opened from `source`: (reader, writer, the HTTP status of the upgrade)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(_ws_head(path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    match = _STATUS.match(head)
    return reader, writer, int(match[1]) if match else 0


async def chat_socket_flood(port: int, path: str, count: int, *, source: str,
                            settle: float = 2.0) -> collections.Counter[str]:
    """`count` chat sockets from one address, kept open `settle` seconds: how each ended
    ("open", or the server's close code)."""
    results: collections.Counter[str] = collections.Counter()
    sockets: list[tuple[asyncio.Task[int | None], asyncio.StreamWriter]] = []
    try:
        for _ in range(count):
            try:
                reader, writer, status = await open_ws(port, path, source=source)
            except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
                results["refused"] += 1
                continue
            if status != 101:
                results[str(status)] += 1
                writer.close()
                continue
            sockets.append((asyncio.create_task(_close_code(reader)), writer))
        if sockets:
            await asyncio.wait([task for task, _ in sockets], timeout=settle)
        for task, _ in sockets:
            if not task.done():
                results["open"] += 1
            else:
                code = None if task.exception() else task.result()
                results[str(code or "reset")] += 1
        return results
    finally:
        for task, writer in sockets:
            task.cancel()
            writer.close()


CHAT_FLOOD_FRAMES = (b'{"type": "join", "name": "flood"}',
                     b'{"type": "ban", "user_id": "someone"}',
                     b'{"type": "delete", "id": 1}')


async def chat_frame_flood(port: int, path: str, *, sockets: int, frames: int,
                           source: str) -> collections.Counter[str]:
    """`sockets` chat sockets each sending `frames` join and moderation frames as fast as
    they can: how each socket ended (the server's close code, or "open")."""
    async def one() -> str:
        try:
            reader, writer, status = await open_ws(port, path, source=source)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
            return "refused"
        if status != 101:
            writer.close()
            return str(status)
        close = asyncio.create_task(_close_code(reader))
        try:
            batch = b"".join(client_text_frame(f) for f in CHAT_FLOOD_FRAMES) * 10
            sent = 0
            while sent < frames and not close.done():
                writer.write(batch)
                sent += 10 * len(CHAT_FLOOD_FRAMES)
                await writer.drain()
            code = await asyncio.wait_for(close, 10)
            return str(code or "reset")
        except (ConnectionError, OSError):
            return "reset"
        except TimeoutError:
            return "open"
        finally:
            close.cancel()
            writer.close()

    return collections.Counter(await asyncio.gather(*(one() for _ in range(sockets))))


# One TLS context for every attacker's client: httpx builds (and loads the CA bundle into)
# a new one per client otherwise, ~80 ms of the attacking process's CPU each on a loaded
# machine; 20 of them per WHEP round stalled the bench's own loop, and with it the
# new-publisher and new-viewer probes that run there (the "slow go-live" under WHEP offers).
_TLS = ssl.create_default_context()


def from_address(base_url: str, source: str, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client whose connections come from `source` (any of 127.0.0.0/8)."""
    return httpx.AsyncClient(
        base_url=base_url, timeout=30, verify=_TLS, trust_env=False,
        transport=httpx.AsyncHTTPTransport(local_address=source, verify=_TLS), **kwargs)


async def whep_offers(base_url: str, playback_id: str, sdp: str,
                      sources: list[str]) -> collections.Counter[int]:
    """One WHEP offer (that never completes ICE) from each source: the statuses."""
    async def one(source: str) -> int:
        async with from_address(base_url, source) as client:
            response = await client.post(f"/whep/{playback_id}", content=sdp,
                                         headers={"Content-Type": "application/sdp"})
            return response.status_code

    return collections.Counter(await asyncio.gather(*(one(s) for s in sources)))


async def qoe_fresh_views(base_url: str, playback_id: str, count: int, *,
                          source: str) -> collections.Counter[int]:
    """`count` QoE beacons from one address, each with a view id never seen before."""
    codes: collections.Counter[int] = collections.Counter()
    async with from_address(base_url, source) as client:
        for _ in range(count):
            view = os.urandom(12).hex()
            response = await client.post(f"/qoe/{playback_id}", json={
                "view_id": view, "sent": 5000,
                "events": [{"type": "latency", "t": 4000, "seconds": 1.5}]})
            codes[response.status_code] += 1
    return codes


async def wrong_api_tokens(base_url: str, count: int, *, source: str) -> collections.Counter[int]:
    """`count` API calls with made-up bearer tokens from one address: the statuses."""
    codes: collections.Counter[int] = collections.Counter()
    async with from_address(base_url, source) as client:
        for _ in range(count):
            response = await client.get("/api/v1/live-streams", headers={
                "Authorization": f"Bearer {base64.urlsafe_b64encode(os.urandom(24)).decode()}"})
            codes[response.status_code] += 1
    return codes


async def studio_logins(base_url: str, count: int, *, source: str) -> collections.Counter[int]:
    """`count` studio sign-ins with made-up tokens from one address: the statuses."""
    codes: collections.Counter[int] = collections.Counter()
    async with from_address(base_url, source) as client:
        for _ in range(count):
            response = await client.post("/studio/login", data={"token": os.urandom(16).hex()})
            codes[response.status_code] += 1
    return codes


_CANDIDATE = re.compile(r"^a=candidate:.*$", re.MULTILINE)
# TEST-NET-1 (RFC 5737): nothing answers there, so ICE never completes.
NOWHERE_CANDIDATE = "a=candidate:1 1 udp 2130706431 192.0.2.1 9 typ host"


async def never_connecting_offer() -> str:
    """A real aiortc WHEP offer (video and audio, receive only) whose every candidate
    points nowhere: a session the server opens for it never connects."""
    from aiortc import RTCPeerConnection

    from golive.webrtc import gather_on, install_host_address_hook

    install_host_address_hook()  # as the node does at start; a second call changes nothing
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        with gather_on(["127.0.0.1"]):
            await pc.setLocalDescription(await pc.createOffer())
        return _CANDIDATE.sub(NOWHERE_CANDIDATE, pc.localDescription.sdp)
    finally:
        await pc.close()
