"""Hostile RTMP and SRT clients on raw sockets, for the tests and bench/hostile.py.

Each attack does what issue 9's findings describe (idle sockets, partial messages
before `connect`, wrong stream keys, induction floods), from a chosen loopback
source address (any of 127.0.0.0/8) so per-address limits can be aimed at, and
returns what the server did. Nothing here asserts: tests and the bench judge.
"""

from __future__ import annotations

import asyncio
import collections

from tests.ingest.rtmp.rtmpclient import C0C1, SocketClient
from tests.ingest.srt.srtpeers import RawCaller, induction_datagram, null_packets, raw_connection

from golive.ingest.rtmp.chunk import encode_chunk
from golive.ingest.srt.packet import ControlPacket, ControlType, SrtError, parse_packet

MAX_MESSAGE = 0xFFFFFF  # the largest length an RTMP chunk header can announce (16 MiB)


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Read until the server hangs up (True), whatever it sends first."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    return True


async def idle_rtmp_sockets(port: int, count: int, *, source: str,
                            hold: float) -> tuple[int, int]:
    """`count` connections from `source` that say nothing (every other one sends C0+C1
    and then nothing), held up to `hold` seconds: (opened, closed by the server)."""
    held: list[tuple[asyncio.Task[bool], asyncio.StreamWriter]] = []
    for i in range(count):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0))
        except OSError:
            continue
        if i % 2:
            writer.write(C0C1)
        held.append((asyncio.create_task(_closed_by_server(reader)), writer))
    try:
        if held:
            await asyncio.wait([task for task, _ in held], timeout=hold)
        return len(held), sum(1 for task, _ in held if task.done())
    finally:
        for task, writer in held:
            task.cancel()
            writer.close()


async def partial_rtmp_messages(port: int, *, sources: list[str], streams: int = 64,
                                chunks: int = 40, length: int = MAX_MESSAGE) -> int:
    """From each source, one connection that, before `connect`, starts a message announced
    at `length` bytes (16 MiB) on each of `streams` chunk streams and sends `chunks`
    pieces of 128 bytes of each; how many of the connections the server closed (or
    refused outright)."""
    async def one(source: str) -> bool:
        try:
            client = await SocketClient.connect(port, source=source)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return True  # refused before the handshake was done
        try:
            for csid in range(3, 3 + streams):
                first = encode_chunk(0, csid, length=length, type_id=20, body=bytes(128))
                await client.send(first + encode_chunk(3, csid, body=bytes(128)) * chunks)
        except (ConnectionError, OSError):
            return True  # refused while we were still sending
        try:
            return await client.closed_by_server(timeout=10)
        except (ConnectionError, OSError):
            return True  # closed with a reset (our bytes were still unread)
        except TimeoutError:
            return False
        finally:
            client.close()

    results = await asyncio.gather(*(one(s) for s in sources), return_exceptions=True)
    return sum(1 for r in results if r is True)


async def wrong_rtmp_keys(port: int, count: int, *, source: str,
                          parallel: int = 20) -> collections.Counter[str]:
    """`count` publish attempts with wrong stream keys from `source`: the status codes."""
    codes: collections.Counter[str] = collections.Counter()
    left = iter(range(count))

    async def guesser() -> None:
        for i in left:
            try:
                client = await SocketClient.connect(port, source=source)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                codes["refused"] += 1
                continue
            try:
                await client.send(*client.codec.publish_sequence(f"sk_guess_{i:08d}"))
                codes[await client.wait_status()] += 1
            except (ConnectionError, OSError, TimeoutError):
                codes["closed"] += 1
            finally:
                client.close()

    await asyncio.gather(*(guesser() for _ in range(parallel)))
    return codes


class InductionFlood:
    """Inductions from one UDP socket at `rate` per second; `sent` and `answered` count
    as it goes (the listener answers each statelessly, with a cookie)."""

    def __init__(self, port: int, *, rate: float, source: str = "127.0.0.1") -> None:
        self.port = port
        self.rate = rate
        self.source = source
        self.sent = 0
        self._caller: RawCaller | None = None
        self.started = asyncio.Event()

    @property
    def answered(self) -> int:
        return self._caller.queue.qsize() if self._caller is not None else 0

    async def run(self, seconds: float) -> None:
        """Flood for `seconds` (or until cancelled)."""
        loop = asyncio.get_running_loop()
        transport, self._caller = await loop.create_datagram_endpoint(
            RawCaller, local_addr=(self.source, 0), remote_addr=("127.0.0.1", self.port))
        tick = 0.01
        try:
            start = loop.time()
            self.started.set()
            while loop.time() - start < seconds:
                due = int((loop.time() - start + tick) * self.rate)
                while self.sent < due:
                    self.sent += 1
                    transport.sendto(induction_datagram(self.sent & 0x7FFFFFFF or 1))
                await asyncio.sleep(tick)
            await asyncio.sleep(0.2)  # the last answers on their way
        finally:
            transport.close()


async def srt_callers_without_media(port: int, keys: list[str], seconds: float, *,
                                    source: str) -> collections.Counter[str]:
    """One SRT caller per valid key that completes its handshake and then sends only TS
    null packets (no media) for `seconds`: what happened to each ("dropped" when the
    server sent SHUTDOWN, "held" when it never did, else the rejection code)."""

    async def one(index: int, key: str) -> str:
        async with raw_connection(port, key, socket_id=0x5000 + index, source=source) as (
                transport, caller, answer):
            if answer.type != 0xFFFFFFFF:
                return f"rejected {answer.type - 1000}"
            loop = asyncio.get_running_loop()
            sent = 0
            start = loop.time()
            while loop.time() - start < seconds:
                transport.sendto(null_packets(sent, loop.time() - start, answer.socket_id))
                sent += 1
                while not caller.queue.empty():
                    try:
                        packet = parse_packet(caller.queue.get_nowait())
                    except SrtError:
                        continue
                    if isinstance(packet, ControlPacket) and packet.type == ControlType.SHUTDOWN:
                        return "dropped"
                await asyncio.sleep(0.02)
            return "held"

    return collections.Counter(await asyncio.gather(*(one(i, k) for i, k in enumerate(keys))))
