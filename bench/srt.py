"""SRT ingest over a lossy link: golive's SrtServer against srt-live-transmit, same run.

A pre-encoded ~6 Mbit/s MPEG-TS (720p30 H.264 + AAC, CBR-ish, cached) is sent in
real time by ffmpeg's libsrt caller (`-re -c copy -f mpegts srt://...`) through a
UDP proxy that delays every datagram ~15 ms each way and drops data and control
packets (both directions; random plus bursts of 5; handshakes always pass) to
reach 0, 5, 10 and 20% loss. Each loss rate is run once against each receiver,
one after the other, with the same proxy settings and seed:

- golive: `SrtServer` in a separate process (this file with `--serve`) with a
  fake publish target that accepts the key "bench"; `on_payload` writes the
  delivered TS to a file (the demuxer still runs, as in production).
- srt-live-transmit (libsrt, the reference implementation):
  `srt-live-transmit -a no "srt://:PORT?mode=listener&latency=1000" file://con > out.ts`.

The reference bytes are what ffmpeg writes for the same remux into a file;
completeness is the share of its 188-byte TS packets that arrived (in order),
"identical" compares the sha256 of all but the last second. Completeness is also
given without the last second of the stream: ffmpeg's caller
(even with linger=3) hangs up before losses at the very end are repaired, which
hits both receivers alike. Receiver CPU is utime + stime from /proc/PID/stat, from
when the receiver listens (golive's interpreter start-up is not counted) to
caller exit + latency + 0.5 s (the idle wait for the hang-up is not counted).

    python bench/srt.py [--loss 0,5,10,20] [--seconds 20] [--latency-ms 1000] [--keep DIR]

Prints one table, with golive's CPU relative to srt-live-transmit's per loss rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.ingest.srt.srtpeers import LossyProxy

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CACHE = Path(os.environ.get("GOLIVE_BENCH_CACHE", Path(tempfile.gettempdir()) / "golive-bench"))
KEY = "bench"
BURST = 5


# Source ------------------------------------------------------------------------------------


def source_file(kbps: int = 6000, seconds: int = 20) -> Path:
    """A 720p30 H.264 + AAC transport stream at ~6 Mbit/s (CBR-ish), encoded once."""
    path = CACHE / f"source-{kbps}k-{seconds}s.ts"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    video = kbps - 128
    tmp = path.with_suffix(".tmp.ts")
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
         "-b:v", f"{video}k", "-minrate", f"{video}k", "-maxrate", f"{video}k",
         "-bufsize", f"{video}k", "-x264-params", "nal-hrd=cbr", "-g", "60",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "mpegts", str(tmp)],
        check=True,
    )
    tmp.rename(path)
    return path


def reference_bytes(source: Path) -> bytes:
    """What ffmpeg's `-c copy -f mpegts` remux of `source` writes (the caller's payload)."""
    path = source.with_suffix(".remux.ts")
    if not path.exists():
        subprocess.run(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
             "-c", "copy", "-f", "mpegts", str(path)], check=True)
    return path.read_bytes()


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


# Loss proxy (as tests/ingest/srt/srtpeers.py) ----------------------------------------------


def proxy_settings(percent: float) -> tuple[float, float]:
    """(random loss, burst start probability) that drop about `percent` % of packets."""
    share = percent / 100
    burst_start = share * 0.06  # bursts carry 30% of the losses
    return share - burst_start * BURST, burst_start


# golive receiver (runs as `python bench/srt.py --serve OUT`) --------------------------------


def serve(out: Path, latency: float) -> None:
    from golive.ingest.srt.server import SrtServer

    class Publisher:
        stream_id = "bench"
        broadcast_id = "bench"
        webrtc_playback = False

        def __init__(self, done: asyncio.Event) -> None:
            self.done = done
            self.tags = 0
            self.reason = ""

        def push(self, tag: object) -> None:
            self.tags += 1

        def close(self, reason: str) -> None:
            self.reason = reason
            self.done.set()

    class Target:
        def __init__(self) -> None:
            self.done = asyncio.Event()
            self.publisher: Publisher | None = None

        async def open_publisher(self, stream_key: str, *, protocol: str,
                                 remote_address: str,
                                 disconnect: Callable[[str], None] | None = None) -> Publisher:
            from golive.stream.publish import PublishRefused, RefusalReason

            if stream_key != KEY or self.publisher is not None:
                raise PublishRefused(RefusalReason.UNKNOWN_KEY, "unknown stream key")
            self.publisher = Publisher(self.done)
            return self.publisher

    async def main() -> None:
        target = Target()
        with out.open("wb") as sink:
            def tap(key: str, data: bytes) -> None:
                sink.write(data)

            server = SrtServer(target, host="127.0.0.1", port=0, latency=latency,
                               on_payload=tap)
            await server.start()
            print(json.dumps({"port": server.port}), flush=True)
            stats = None

            async def watch() -> None:
                nonlocal stats
                while True:
                    facts = server.connection_facts().get(KEY)
                    if facts is not None:
                        stats = facts.stats
                    await asyncio.sleep(0.05)

            watcher = asyncio.get_running_loop().create_task(watch())
            await target.done.wait()
            watcher.cancel()
            await server.close()
        publisher = target.publisher
        print(json.dumps({
            "reason": publisher.reason if publisher else "",
            "tags": publisher.tags if publisher else 0,
            "lost": stats.packets_lost if stats else None,
            "retransmitted": stats.retransmitted if stats else None,
            "dropped": stats.dropped if stats else None,
            "rtt_ms": stats.rtt_ms if stats else None,
            "latency_ms": stats.latency_ms if stats else None,
        }), flush=True)

    asyncio.run(main())


# Measurement --------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def try_reap(proc: subprocess.Popen[bytes]) -> float | None:
    """CPU seconds of `proc` if it has exited (reaping it), else None."""
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if not pid:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_receiver(receiver: str, out: Path, latency_ms: int) -> tuple[
        subprocess.Popen[bytes], int]:
    """The receiver process and its UDP port (golive's once it says it is listening)."""
    if receiver == "golive":
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(out), "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        return proc, int(json.loads(proc.stdout.readline())["port"])
    assert SRT_LIVE_TRANSMIT is not None
    port = free_udp_port()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [SRT_LIVE_TRANSMIT, "-a", "no", "-q",
             f"srt://127.0.0.1:{port}?mode=listener&latency={latency_ms}", "file://con"],
            stdout=sink, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # srt-live-transmit says nothing when it listens
    return proc, port


def missing_packets(reference: bytes, data: bytes) -> list[int]:
    """Indexes of the reference's TS packets absent from `data` (a subsequence of it)."""
    missing = []
    j = 0
    for i in range(0, len(reference), 188):
        if data[j : j + 188] == reference[i : i + 188]:
            j += 188
        else:
            missing.append(i // 188)
    return missing


@dataclass
class Result:
    loss: int
    receiver: str
    received: int
    complete: float  # share of the reference's TS packets delivered
    body_complete: float  # the same, leaving out the last second
    identical: bool  # all but the last second byte-identical
    cc_errors: int
    cpu_s: float
    window_s: float
    drop_rate: float
    extra: str


async def run_one(receiver: str, percent: int, source: Path, reference: bytes, workdir: Path,
                  latency_ms: int, body: int) -> Result:
    out = workdir / f"{receiver}-{percent}.ts"
    loop = asyncio.get_running_loop()
    proc, port = await loop.run_in_executor(None, start_receiver, receiver, out, latency_ms)
    loss, burst_start = proxy_settings(percent)
    proxy = LossyProxy(("127.0.0.1", port), loss=loss, burst_start=burst_start,
                       burst_length=BURST, delay=0.015, seed=percent + 1)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy,
                                                        local_addr=("127.0.0.1", 0))
    with contextlib.suppress(OSError):
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                      4 << 20)
    proxy_port = transport.get_extra_info("sockname")[1]
    # linger: ffmpeg waits up to 3 s for unacknowledged data before it hangs up.
    url = (f"srt://127.0.0.1:{proxy_port}?streamid={KEY}&latency={latency_ms * 1000}"
           "&linger=3")
    cpu_before = proc_cpu(proc.pid)
    start = time.monotonic()
    try:
        caller = await asyncio.create_subprocess_exec(
            FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(source),
            "-c", "copy", "-f", "mpegts", url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await caller.communicate()
        if caller.returncode:
            print(f"ffmpeg -> {receiver} at {percent}%: exit {caller.returncode}: "
                  f"{err.decode(errors='replace').strip()[-300:]}", file=sys.stderr)
        # CPU is counted while the stream plays out: until the caller is gone and the
        # receiver's latency buffer has drained, not the idle wait for the hang-up.
        await asyncio.sleep(latency_ms / 1000 + 0.5)
        cpu_after = try_reap(proc)
        if cpu_after is None:
            cpu_after = proc_cpu(proc.pid)
        window = time.monotonic() - start
        # Both receivers then end on their own (SHUTDOWN, or the peer idle timeout).
        deadline = time.monotonic() + 15
        while proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            try_reap(proc)
    finally:
        transport.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await asyncio.sleep(2)
            if try_reap(proc) is None:
                proc.kill()
                proc.wait()
    extra = ""
    if receiver == "golive" and proc.stdout is not None:
        tail = proc.stdout.read().decode().strip().splitlines()
        if tail:
            facts = json.loads(tail[-1])
            extra = (f"lost={facts['lost']} retx={facts['retransmitted']} "
                     f"dropped={facts['dropped']} rtt={facts['rtt_ms'] or 0:.0f}ms "
                     f"end={facts['reason']}")
    data = out.read_bytes()
    missing = missing_packets(reference, data)
    total = len(reference) // 188
    body_packets = body // 188
    body_missing = sum(1 for i in missing if i < body_packets)
    return Result(
        loss=percent, receiver=receiver, received=len(data),
        complete=1 - len(missing) / total, body_complete=1 - body_missing / body_packets,
        identical=hashlib.sha256(data[:body]).digest() == hashlib.sha256(
            reference[:body]).digest(),
        cc_errors=ts_continuity_errors(data), cpu_s=cpu_after - cpu_before, window_s=window,
        drop_rate=proxy.data_drop_rate, extra=extra)


def print_table(results: list[Result], reference: bytes, seconds: float) -> None:
    header = (f"{'loss':>4} {'proxy drop':>10} {'receiver':<17} {'complete %':>10} "
              f"{'w/o last 1s':>11} {'identical':>9} {'cc err':>6} {'CPU s':>6} {'CPU %':>6} "
              f"{'golive/slt':>10}  golive counters")
    print(header)
    print("-" * len(header))
    by_loss: dict[int, dict[str, Result]] = {}
    for r in results:
        by_loss.setdefault(r.loss, {})[r.receiver] = r
    for r in results:
        pair = by_loss[r.loss]
        ratio = ""
        if r.receiver == "golive" and "srt-live-transmit" in pair:
            ratio = f"{r.cpu_s / max(pair['srt-live-transmit'].cpu_s, 1e-9):.1f}x"
        print(f"{r.loss:>3}% {r.drop_rate:>10.1%} {r.receiver:<17} {100 * r.complete:>10.2f} "
              f"{100 * r.body_complete:>11.2f} {'yes' if r.identical else 'no':>9} "
              f"{r.cc_errors:>6} {r.cpu_s:>6.2f} {100 * r.cpu_s / r.window_s:>5.1f}% "
              f"{ratio:>10}  {r.extra}")
    print(f"\nsource: {len(reference) / 1e6:.1f} MB, {seconds:.0f} s "
          f"({8 * len(reference) / seconds / 1e6:.2f} Mbit/s) sent by ffmpeg -re (libsrt "
          "caller) through a proxy adding 15 ms each way. proxy drop: data packets dropped "
          "(originals and retransmissions; control packets are dropped at the same rate). "
          "complete: TS packets delivered of those sent. w/o last 1s and identical: the "
          "stream less its last second, which ffmpeg's caller does not wait to repair when "
          "it closes. CPU: receiver utime+stime while the stream plays (listening to caller "
          "exit + latency + 0.5 s); CPU % of one core over that window.")


async def bench(losses: list[int], seconds: int, latency_ms: int, keep: Path | None) -> None:
    if SRT_LIVE_TRANSMIT is None:
        sys.exit("srt-live-transmit not found (apt install srt-tools)")
    source = source_file(seconds=seconds)
    reference = reference_bytes(source)
    body = (len(reference) - len(reference) // seconds) // 188 * 188  # all but the last second
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="golive-srt-bench-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for percent in losses:
            for receiver in ("golive", "srt-live-transmit"):
                result = await run_one(receiver, percent, source, reference, workdir,
                                       latency_ms, body)
                print(f"  {percent}% {receiver}: {result.received} B, "
                      f"cpu {result.cpu_s:.2f}s {result.extra}", file=sys.stderr, flush=True)
                results.append(result)
    print_table(results, reference, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loss", default="0,5,10,20", help="loss rates in percent")
    parser.add_argument("--seconds", type=int, default=20, help="length of the source")
    parser.add_argument("--latency-ms", type=int, default=1000, help="SRT latency, both ends")
    parser.add_argument("--keep", type=Path, help="keep the received streams in this folder")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.latency_ms / 1000)
        return
    losses = [int(x) for x in args.loss.split(",") if x]
    asyncio.run(bench(losses, args.seconds, args.latency_ms, args.keep))


if __name__ == "__main__":
    main()
