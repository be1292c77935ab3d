"""SRT ingest end to end: real libsrt callers (ffmpeg, srt-live-transmit) against SrtServer."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import shutil
import signal
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import imageio_ffmpeg
import pytest
from tests.e2e.conftest import eventually
from tests.ingest.attacks import InductionFlood
from tests.ingest.srt.srtpeers import (
    NULL_TS_PACKET,
    FakePublisher,
    FakeTarget,
    LossyProxy,
    null_packets,
    raw_connection,
    raw_handshake,
    ts_continuity_errors,
)

from golive.formats.tag import TagType
from golive.ingest.srt.crypto import KeyMaterial, derive_kek
from golive.ingest.srt.server import SrtServer

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit")
CHUNK = 1316  # seven TS packets: what live SRT callers put in one packet
KEY = "live_golive_key"
PASSPHRASE = "correct horse battery"

needs_slt = pytest.mark.skipif(SRT_LIVE_TRANSMIT is None,
                               reason="srt-live-transmit (srt-tools) missing")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An 8 s H.264/AAC transport stream, padded to whole SRT payloads."""
    path = tmp_path_factory.mktemp("srt") / "clip.ts"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "8",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "800k",
         "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(path)],
        check=True, timeout=60)
    data = path.read_bytes()
    data += NULL_TS_PACKET * ((-len(data) % CHUNK) // 188)
    path.write_bytes(data)
    return data


class Received:
    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, key: str, payload: bytes) -> None:
        assert key == KEY
        self.data.extend(payload)

    async def wait_for(self, size: int, timeout: float) -> None:
        for _ in range(int(timeout / 0.05)):
            if len(self.data) >= size:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SrtServer, FakeTarget, Received]]:
    target = FakeTarget({KEY})
    received = Received()
    passphrases = {KEY: None}

    async def passphrase_for(key: str) -> str | None:
        return passphrases.get(key)

    server = SrtServer(target, host="127.0.0.1", port=0, passphrase_for=passphrase_for,
                       on_payload=received)
    server.passphrases = passphrases  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server, target, received
    finally:
        await server.close()


async def send_with_srt_live_transmit(url: str, data: bytes, received: Received, *,
                                      connected: asyncio.Event | None = None,
                                      pace: float = 0.002, trailer: int = 60) -> int | None:
    """Pipe `data` (and some null packets after it) at a steady rate; stop once it arrived.

    srt-live-transmit discards what it reads before it is connected, so with
    `connected` given, writing starts only once the server accepted the caller.
    """
    assert SRT_LIVE_TRANSMIT is not None
    process = await asyncio.create_subprocess_exec(
        SRT_LIVE_TRANSMIT, "-a", "no", "-chunk", str(CHUNK), "file://con", url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    assert process.stdin is not None
    try:
        if connected is not None:
            await asyncio.wait_for(connected.wait(), 10)
            await asyncio.sleep(0.3)  # the answer still has to reach the caller
        # The trailer lets losses near the end of `data` be noticed and repaired.
        stream = data + NULL_TS_PACKET * 7 * trailer
        for i in range(0, len(stream), CHUNK):
            if process.returncode is not None:
                break
            process.stdin.write(stream[i : i + CHUNK])
            await process.stdin.drain()
            await asyncio.sleep(pace)
        process.stdin.close()
        await received.wait_for(len(data), timeout=15)
        process.send_signal(signal.SIGINT)
        return await asyncio.wait_for(process.wait(), 10)
    except (BrokenPipeError, ConnectionResetError):
        return await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def slt_url(port: int, stream_id: str, **options: str | int) -> str:
    query = "&".join([f"streamid={stream_id}", *(f"{k}={v}" for k, v in options.items())])
    return f"srt://127.0.0.1:{port}?{query}"


async def wait_closed(target: FakeTarget, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if target.publishers and all(p.closed for p in target.publishers):
            return
        await asyncio.sleep(0.05)


# srt-live-transmit -------------------------------------------------------------------------


@needs_slt
@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "passphrase"])
@pytest.mark.parametrize("stream_id", [KEY, f"#!::r={KEY},m=publish"], ids=["bare", "acl"])
async def test_srt_live_transmit_publishes_byte_identical_ts(
    served: tuple[SrtServer, FakeTarget, Received], clip: bytes, encrypted: bool, stream_id: str,
) -> None:
    server, target, received = served
    options: dict[str, str | int] = {}
    if encrypted:
        server.passphrases[KEY] = PASSPHRASE  # type: ignore[attr-defined]
        options = {"passphrase": PASSPHRASE, "pbkeylen": 32}
    await send_with_srt_live_transmit(slt_url(server.port, stream_id, **options), clip, received,
                                      connected=target.opened)
    assert bytes(received.data[: len(clip)]) == clip
    await wait_closed(target)
    (publisher,) = target.publishers
    assert publisher.closed == "unpublish"
    kinds = {tag.type for tag in publisher.tags}
    assert {TagType.VIDEO, TagType.AUDIO} <= kinds
    assert server.connection_count == 0


async def read_until_rejected(process: asyncio.subprocess.Process) -> bytes:
    """srt-live-transmit's stderr up to the line saying it was rejected, or to its exit.

    Now and then srt-live-transmit (1.5) prints the rejection and then never exits, with
    golive's listener as with the one before it; the rejection is what the test is about.
    """
    assert process.stderr is not None
    seen = bytearray()
    while b"reject" not in seen.lower():
        line = await process.stderr.readline()
        if not line:
            break
        seen.extend(line)
    return bytes(seen)


@needs_slt
async def test_wrong_passphrase_and_wrong_key_are_rejected(
    served: tuple[SrtServer, FakeTarget, Received], clip: bytes,
) -> None:
    server, target, received = served
    server.passphrases[KEY] = PASSPHRASE  # type: ignore[attr-defined]
    for url in (slt_url(server.port, KEY, passphrase="not the right one"),
                slt_url(server.port, KEY),  # no passphrase for a stream that needs one
                slt_url(server.port, "wrong-key")):
        assert SRT_LIVE_TRANSMIT is not None
        process = await asyncio.create_subprocess_exec(
            SRT_LIVE_TRANSMIT, "-a", "no", "file://con", url, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(clip[:CHUNK * 10])
        process.stdin.close()
        try:
            stderr = await asyncio.wait_for(read_until_rejected(process), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        # srt-live-transmit exits 0 even when rejected; it says so on stderr.
        assert b"reject" in stderr.lower(), stderr
    assert target.publishers == [] and received.data == bytearray()


# ffmpeg (libsrt) -----------------------------------------------------------------------------


async def run_ffmpeg(url: str, source: Path) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(source), "-c", "copy",
        "-f", "mpegts", url, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr


@pytest.mark.parametrize("encrypted", [False, True], ids=["clear", "passphrase"])
async def test_ffmpeg_publishes(served: tuple[SrtServer, FakeTarget, Received], clip: bytes,
                                tmp_path: Path, encrypted: bool) -> None:
    server, target, received = served
    source = tmp_path / "in.ts"
    source.write_bytes(clip[: len(clip) // 2])  # 4 s, read in real time
    url = f"srt://127.0.0.1:{server.port}?streamid={KEY}&latency=200000"
    if encrypted:
        server.passphrases[KEY] = PASSPHRASE  # type: ignore[attr-defined]
        url += f"&passphrase={PASSPHRASE.replace(' ', '%20')}&pbkeylen=16"
    code, stderr = await run_ffmpeg(url, source)
    assert code == 0, stderr
    await wait_closed(target)
    (publisher,) = target.publishers
    assert publisher.closed in ("unpublish", "timeout")
    assert len(received.data) > 100_000 and len(received.data) % 188 == 0
    assert ts_continuity_errors(bytes(received.data)) == 0
    video = [t for t in publisher.tags if t.type == TagType.VIDEO]
    assert len(video) > 50 and video[0].body[0] >> 4 == 1  # starts at a keyframe


async def test_ffmpeg_with_wrong_key_or_passphrase_fails(
    served: tuple[SrtServer, FakeTarget, Received], clip: bytes, tmp_path: Path,
) -> None:
    server, target, _ = served
    source = tmp_path / "in.ts"
    source.write_bytes(clip[:CHUNK * 100])
    server.passphrases[KEY] = PASSPHRASE  # type: ignore[attr-defined]
    for query in ("streamid=nope&passphrase=correct%20horse%20battery",
                  f"streamid={KEY}&passphrase=incorrect%20horse%20battery"):
        code, _ = await run_ffmpeg(f"srt://127.0.0.1:{server.port}?{query}", source)
        assert code != 0
    assert target.publishers == []


# Rejection reasons on the wire --------------------------------------------------------------


async def test_rejection_reasons(served: tuple[SrtServer, FakeTarget, Received]) -> None:
    server, target, _ = served
    assert (await raw_handshake(server.port, "nope")).type == 1000 + 1403
    assert (await raw_handshake(server.port, f"#!::r={KEY},m=request",
                                socket_id=2)).type == 1000 + 1405
    server.passphrases[KEY] = PASSPHRASE  # type: ignore[attr-defined]
    assert (await raw_handshake(server.port, KEY, socket_id=3)).type == 1000 + 11  # UNSECURE
    salt = os.urandom(16)
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    wrong = KeyMaterial(1, 2, salt, 16, aes_key_wrap(derive_kek("other secret!", salt, 16),
                                                      os.urandom(16)))
    answer = await raw_handshake(server.port, KEY, socket_id=4, km=wrong.encode(), encryption=2)
    assert answer.type == 1000 + 10  # BADSECRET
    right = KeyMaterial(1, 2, salt, 16, aes_key_wrap(derive_kek(PASSPHRASE, salt, 16),
                                                      os.urandom(16)))
    answer = await raw_handshake(server.port, KEY, socket_id=5, km=right.encode(), encryption=2)
    assert answer.type == 0xFFFFFFFF and answer.socket_id != 0
    assert len(target.publishers) == 1


@pytest.mark.parametrize("stuck", ["passphrase", "stream key"])
async def test_a_check_that_never_returns_frees_its_slot(
    caplog: pytest.LogCaptureFixture, stuck: str
) -> None:
    # A lookup that hangs (a locked database) held the caller's connection slot for
    # ever: two such callers filled this listener. Now each is turned away (1503) once
    # check_timeout has passed, and its slot is free again.
    hanging = asyncio.Event()  # set: lookups answer again

    class StuckTarget(FakeTarget):
        async def open_publisher(self, stream_key: str, *, protocol: str, remote_address: str,
                                 disconnect: object = None) -> FakePublisher:
            if stuck == "stream key":
                await hanging.wait()
            return await super().open_publisher(stream_key, protocol=protocol,
                                                remote_address=remote_address)

    async def passphrase_for(key: str) -> str | None:
        if stuck == "passphrase":
            await hanging.wait()
        return None

    target = StuckTarget({KEY})
    server = SrtServer(target, host="127.0.0.1", port=0, passphrase_for=passphrase_for,
                       max_connections=2, check_timeout=0.3)
    await server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="golive.ingest.srt.server"):
            answers = await asyncio.gather(*(raw_handshake(server.port, KEY, socket_id=10 + i)
                                             for i in range(4)))
        # Two got a slot and waited for their check; the others found the listener full.
        assert sorted(a.type for a in answers) == [1000 + 5] * 2 + [1000 + 1503] * 2  # BACKLOG
        assert server.listener.pending_count == 0
        assert "srt stream key check timed out" in caplog.text
        assert KEY not in caplog.text
        hanging.set()
        answer = await raw_handshake(server.port, KEY, socket_id=20)
        assert answer.type == 0xFFFFFFFF and len(target.publishers) == 1
    finally:
        await server.close()


# Loss ---------------------------------------------------------------------------------------


@needs_slt
@pytest.mark.parametrize(("loss", "burst_start"), [(0.035, 0.003), (0.15, 0.012)],
                         ids=["5pct", "20pct"])
async def test_lossy_link_delivers_identical_ts(
    served: tuple[SrtServer, FakeTarget, Received], clip: bytes, loss: float,
    burst_start: float,
) -> None:
    server, target, received = served
    loop = asyncio.get_running_loop()
    proxy = LossyProxy(("127.0.0.1", server.port), loss=loss, burst_start=burst_start,
                       delay=0.015)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy,
                                                        local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    facts = None

    async def watch() -> None:
        nonlocal facts
        while True:
            facts = server.connection_facts().get(KEY, facts)
            await asyncio.sleep(0.1)

    watcher = loop.create_task(watch())
    try:
        await send_with_srt_live_transmit(slt_url(port, KEY, latency=1500), clip, received,
                                          connected=target.opened)
    finally:
        watcher.cancel()
        transport.close()
    assert hashlib.sha256(bytes(received.data[: len(clip)])).hexdigest() == \
        hashlib.sha256(clip).hexdigest()
    assert facts is not None
    stats = facts.stats
    sent = proxy.data_forwarded + proxy.originals_dropped + proxy.retransmissions_dropped
    rate = (proxy.originals_dropped + proxy.retransmissions_dropped) / sent
    print(f"\nproxy dropped {rate:.1%} of data packets ({proxy.originals_dropped} originals, "
          f"{proxy.retransmissions_dropped} retransmissions, {proxy.control_dropped} control); "
          f"server: lost={stats.packets_lost} retransmitted={stats.retransmitted} "
          f"dropped={stats.dropped} rtt_ms={stats.rtt_ms:.1f} latency_ms={stats.latency_ms}")
    assert stats.latency_ms == 1500
    assert stats.dropped == 0
    # Every original the proxy dropped shows up as a loss the server noticed; the
    # last few (at the very end of the trailer) may go unnoticed.
    assert proxy.originals_dropped - 60 <= stats.packets_lost <= proxy.originals_dropped
    assert stats.retransmitted >= stats.packets_lost * 0.95
    assert 25 <= stats.rtt_ms <= 300  # the proxy adds 15 ms each way


# Hostile datagrams --------------------------------------------------------------------------


@needs_slt
async def test_arbitrary_datagrams_do_not_disturb_a_publisher(
    served: tuple[SrtServer, FakeTarget, Received], clip: bytes,
) -> None:
    server, target, received = served
    loop = asyncio.get_running_loop()
    rnd = random.Random(7)
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", server.port))

    async def noise() -> None:
        await target.opened.wait()
        socket_ids = list(server._publishing)  # the live publisher's id, as an attacker might guess
        while True:
            kind = rnd.randrange(5)
            dest = rnd.choice(socket_ids) if socket_ids else 0
            if kind == 0:
                datagram = rnd.randbytes(rnd.randrange(0, 1500))
            elif kind == 1:  # a data packet claiming the publisher's socket
                datagram = struct.pack(">IIII", rnd.getrandbits(31), 0xC0000000, 0, dest) + \
                    rnd.randbytes(1316)
            elif kind == 2:  # SHUTDOWN for the publisher's socket, from elsewhere
                datagram = struct.pack(">IIII", 0x80050000, 0, 0, dest)
            elif kind == 3:  # a conclusion with a made-up cookie
                datagram = struct.pack(">IIII", 0x80000000, 0, 0, 0) + \
                    struct.pack(">IHHIIIIII", 5, 0, 7, 1, 1500, 8192, 0xFFFFFFFF, 9, 42) + \
                    bytes(16)
            else:  # an induction
                datagram = struct.pack(">IIII", 0x80000000, 0, 0, 0) + \
                    struct.pack(">IHHIIIIII", 4, 0, 2, 1, 1500, 8192, 1, rnd.getrandbits(31),
                                0) + bytes(16)
            transport.sendto(datagram)
            await asyncio.sleep(0.001)

    noisy = loop.create_task(noise())
    try:
        await send_with_srt_live_transmit(slt_url(server.port, KEY), clip, received,
                                          connected=target.opened)
    finally:
        noisy.cancel()
        transport.close()
    assert bytes(received.data[: len(clip)]) == clip
    assert server.ignored_datagrams > 100
    await wait_closed(target)
    assert [p.closed for p in target.publishers] == ["unpublish"]


@needs_slt
async def test_a_connection_that_sends_no_media_is_dropped_while_a_publisher_streams(
    clip: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    """A caller with a valid key that completes the handshake and then sends only TS null
    packets (or keep-alives) keeps its connection's idle timer fresh: it held a publisher
    slot and its key's broadcast for ever. Now it is dropped after `media_timeout`, while
    srt-live-transmit publishes beside it undisturbed (for longer than that timeout)."""
    caplog.set_level(logging.INFO, logger="golive.ingest.srt.server")
    target = FakeTarget({KEY, "squatted_key"})
    received = Received()
    server = SrtServer(target, host="127.0.0.1", port=0, media_timeout=1.0,
                       on_payload=lambda key, data: received(key, data) if key == KEY else None)
    await server.start()
    sent = 0

    async def squat(accepted: asyncio.Event) -> None:
        nonlocal sent
        async with raw_connection(server.port, "squatted_key", socket_id=0x4242) as (
                transport, _, answer):
            assert answer.type == 0xFFFFFFFF  # accepted
            accepted.set()
            start = asyncio.get_running_loop().time()
            while True:  # until cancelled: the attacker never stops on its own
                elapsed = asyncio.get_running_loop().time() - start
                transport.sendto(null_packets(sent, elapsed, answer.socket_id))
                sent += 1
                await asyncio.sleep(0.02)

    accepted = asyncio.Event()
    squatter = asyncio.create_task(squat(accepted))
    try:
        await asyncio.wait_for(accepted.wait(), 10)
        (squatting,) = target.publishers
        target.opened.clear()  # set again when srt-live-transmit is let in
        await send_with_srt_live_transmit(slt_url(server.port, KEY), clip, received,
                                          connected=target.opened)

        async def squatter_dropped() -> bool:
            return squatting.closed is not None

        await eventually(squatter_dropped, timeout=20, what="the silent caller dropped")
        await wait_closed(target)
        assert not squatter.done()  # it was still sending when it was dropped
    finally:
        squatter.cancel()
        await asyncio.gather(squatter, return_exceptions=True)
        await server.close()
    assert squatting.closed == "timeout: no media" and squatting.tags == []
    assert sent > 1.0 / 0.02 / 2  # it kept sending for (about) the whole timeout
    assert bytes(received.data[: len(clip)]) == clip
    legit = target.publishers[1]
    assert legit.closed == "unpublish"
    assert {TagType.VIDEO, TagType.AUDIO} <= {tag.type for tag in legit.tags}
    assert any("srt publisher dropped reason=no_media" in r.getMessage() for r in caplog.records)


@needs_slt
async def test_induction_flood_from_one_socket_does_not_keep_a_caller_out(
    served: tuple[SrtServer, FakeTarget, Received],
) -> None:
    """5,000 inductions a second from one UDP socket while srt-live-transmit connects from
    another: the flood costs the listener no state, and the caller gets in."""
    server, target, _ = served
    flood = InductionFlood(server.port, rate=5000)
    flooding = asyncio.create_task(flood.run(seconds=120))

    async def in_full_swing() -> bool:
        return flood.sent >= 5000

    assert SRT_LIVE_TRANSMIT is not None
    try:
        await eventually(in_full_swing, timeout=30, what="5,000 inductions")
        process = await asyncio.create_subprocess_exec(
            SRT_LIVE_TRANSMIT, "-a", "no", "file://con", slt_url(server.port, KEY),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(target.opened.wait(), 30)
            assert server.connection_count == 1
            at_connect = flood.sent
            assert not flooding.done()  # the caller connected while the flood went on
        finally:
            process.kill()
            await process.wait()
    finally:
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)
    assert at_connect >= 5000
    assert flood.answered > 1000  # the flood was answered, statelessly
    assert server.listener.pending_count == 0 and len(server.listener.budget) == 1


async def test_logs_never_show_a_stream_key_nor_raw_control_characters(
    served: tuple[SrtServer, FakeTarget, Received], caplog: pytest.LogCaptureFixture,
) -> None:
    server, _, _ = served
    caplog.set_level(logging.INFO, logger="golive.ingest.srt.server")
    forged = "nope\n2026-01-01T00:00:00Z level=info msg=forged"
    assert (await raw_handshake(server.port, forged)).type == 1000 + 1403
    assert (await raw_handshake(server.port, f"#!::{KEY}", socket_id=2)).type == 1000 + 1400
    accepted = await raw_handshake(server.port, KEY, socket_id=3)
    assert accepted.type == 0xFFFFFFFF
    await server.close()  # closes the publisher: a "closed" line too
    lines = [r.getMessage() for r in caplog.records]
    assert any("rejected" in line and "nope…" in line for line in lines), lines
    assert any("connected" in line and "stream_id=ls_1" in line for line in lines), lines
    assert any("closed" in line and "stream_id=ls_1" in line for line in lines), lines
    assert all(KEY not in line and "\n" not in line for line in lines), lines
