"""A source with CEA-608 captions, as broadcast encoders send them, and reading them back.

ffmpeg cannot caption a picture from text, so the captions are written here: pop-on
captions "CAPTION n" every two seconds on CC1 (and, asked for, "LEYENDA n" on CC3: the
second field's first channel, where a second language usually goes), as ATSC A/53
cc_data in a registered user data SEI in front of every picture (padding between
captions), inserted into an H.264 elementary stream; ffmpeg's own CEA-608 decoder reads
the CC1 ones back from any output.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.mediatools import FFMPEG

FPS = 30
EVERY_S = 2  # a new caption every two seconds


def _odd_parity(byte: int) -> int:
    return byte | 0x80 if bin(byte).count("1") % 2 == 0 else byte


def _caption_pairs(text: str) -> list[tuple[int, int]]:
    """CC1 pop-on: resume caption loading, erase memory, row 15, the text, end of caption
    (control codes twice, as 608 requires)."""
    def twice(a: int, b: int) -> list[tuple[int, int]]:
        return [(a, b), (a, b)]

    chars = [ord(c) for c in text] + ([0] if len(text) % 2 else [])
    return [*twice(0x14, 0x20), *twice(0x14, 0x2E), *twice(0x14, 0x70),
            *zip(chars[::2], chars[1::2], strict=True), *twice(0x14, 0x2F)]


def _escape(rbsp: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sei(pair: tuple[int, int], second: tuple[int, int] = (0x80, 0x80)) -> bytes:
    """The cc_data of one picture: `pair` in the first field (CC1), `second` in the
    second (CC3; padding by default)."""
    a, b = (_odd_parity(x) for x in pair)
    c, d = (_odd_parity(x) for x in second)
    payload = (b"\xb5\x00\x31GA94\x03" + bytes([0x40 | 2, 0xFF])
               + bytes([0xFC, a, b, 0xFD, c, d]) + b"\xff")
    return b"\x00\x00\x00\x01\x06" + _escape(bytes([4, len(payload)]) + payload + b"\x80")


def captioned_flv(path: Path, *, seconds: int = 20, start_s: int = 0,
                  cc3: bool = False) -> Path:
    """An FLV (H.264 640x360 30 fps, AAC) whose pictures carry "CAPTION 0", "CAPTION 1",
    ... every two seconds on CC1; from `start_s` on (no caption data before it), where
    the caption numbers go on from that time. `cc3`: "LEYENDA 0", ... on CC3 as well."""
    plain = path.with_suffix(".plain.h264")
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s=640x360:r={FPS}", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), "-bf", "0", "-a53cc", "0",
         "-x264-params", "aud=1", "-f", "h264", str(plain)],
        check=True, timeout=120,
    )  # fmt: skip
    schedule: dict[int, tuple[int, int]] = {}
    second: dict[int, tuple[int, int]] = {}
    for n in range(seconds // EVERY_S):
        for i, pair in enumerate(_caption_pairs(f"CAPTION {n}")):
            schedule[n * EVERY_S * FPS + i] = pair
        for i, pair in enumerate(_caption_pairs(f"LEYENDA {n}") if cc3 else ()):
            second[n * EVERY_S * FPS + i] = pair
    data = plain.read_bytes()
    out, frame = bytearray(), 0
    for nal in re.split(b"\x00\x00\x00\x01|\x00\x00\x01", data):
        if not nal:
            continue
        out += b"\x00\x00\x00\x01" + nal
        if nal[0] & 0x1F == 9:  # an access unit delimiter: a picture begins
            if frame >= start_s * FPS:
                out += _sei(schedule.get(frame, (0x80, 0x80)), second.get(frame, (0x80, 0x80)))
            frame += 1
    captioned = path.with_suffix(".h264")
    captioned.write_bytes(bytes(out))
    # The raw stream is timed in a pass of its own (its reader makes up timestamps that
    # the FLV muxer refuses to interleave with audio), then the sound is added.
    timed = path.with_suffix(".video.mp4")
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-r", str(FPS), "-i", str(captioned),
         "-c", "copy", str(timed)],
        check=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(timed),
         "-f", "lavfi", "-t", str(seconds), "-i", "sine=sample_rate=48000",
         "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def read_captions(path: Path | str) -> list[str]:
    """The CC1 caption texts of a file or URL, in order, by ffmpeg's CEA-608 decoder."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"movie={path}[out0+subcc]", "-map", "0:s", "-f", "srt", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return re.findall(r"CAPTION \d+", result.stdout)
