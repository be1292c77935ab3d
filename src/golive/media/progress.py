"""Parse ffmpeg's `-progress` output into `EncodeProgress` snapshots (media).

ffmpeg writes blocks of `key=value` lines, each closed by `progress=continue` (or
`progress=end` at exit). `ProgressParser` is sans-IO: feed it bytes in any chunking,
get back the completed snapshots. It never raises: unknown keys, unparsable values
and overlong lines are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# A real line is under 100 bytes; anything this long is garbage and is skipped.
_MAX_LINE = 1024
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class EncodeProgress:
    """One progress report; None where ffmpeg said N/A or did not say."""

    frame: int = 0
    fps: float = 0.0
    bitrate_kbps: float | None = None
    total_size: int | None = None
    out_time_us: int | None = None
    dup_frames: int = 0
    drop_frames: int = 0
    speed: float | None = None
    ended: bool = False

    @property
    def out_time(self) -> float | None:
        """Seconds of output written so far."""
        return None if self.out_time_us is None else self.out_time_us / 1_000_000


class ProgressParser:
    """Accumulates `-progress` lines; `feed` returns the blocks it completed."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipping = False  # inside an overlong line
        self._fields: dict[str, str] = {}

    def feed(self, data: bytes) -> list[EncodeProgress]:
        reports: list[EncodeProgress] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            self._take(data[start:newline], complete=True, out=reports)
            start = newline + 1
        self._take(data[start:], complete=False, out=reports)
        return reports

    def _take(self, chunk: bytes, *, complete: bool, out: list[EncodeProgress]) -> None:
        if not complete:
            if self._skipping:
                return
            self._partial += chunk
            if len(self._partial) > _MAX_LINE:
                self._partial.clear()
                self._skipping = True
            return
        if self._skipping:
            self._skipping = False
            return
        line = bytes(self._partial + chunk)
        self._partial.clear()
        if len(line) > _MAX_LINE:
            return
        report = self._line(line.decode("utf-8", "replace").strip())
        if report is not None:
            out.append(report)

    def _line(self, line: str) -> EncodeProgress | None:
        key, sep, value = line.partition("=")
        if not sep:
            return None
        key, value = key.strip(), value.strip()
        if key != "progress":
            if len(self._fields) < 64 or key in self._fields:
                self._fields[key] = value
            return None
        fields, self._fields = self._fields, {}
        return _report(fields, ended=value == "end")


def _report(f: dict[str, str], *, ended: bool) -> EncodeProgress:
    out_time = _int(f.get("out_time_us"))
    if out_time is None:
        out_time = _clock(f.get("out_time"))
    if out_time is not None and out_time < 0:  # ffmpeg's N/A before the first packet
        out_time = None
    return EncodeProgress(
        frame=_int(f.get("frame")) or 0,
        fps=_float(f.get("fps")) or 0.0,
        bitrate_kbps=_float(f.get("bitrate")),  # "1234.5kbits/s"
        total_size=_int(f.get("total_size")),
        out_time_us=out_time,
        dup_frames=_int(f.get("dup_frames")) or 0,
        drop_frames=_int(f.get("drop_frames")) or 0,
        speed=_float(f.get("speed")),  # "1.01x"
        ended=ended,
    )


def _float(value: str | None) -> float | None:
    if not value:
        return None
    match = _NUMBER.match(value)
    if match is None:
        return None
    try:
        number = float(match.group())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: str | None) -> int | None:
    number = _float(value)
    if number is None or abs(number) > 2**63:
        return None
    return int(number)


def _clock(value: str | None) -> int | None:
    """`HH:MM:SS.micro` to microseconds."""
    if not value:
        return None
    parts = value.split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes = int(parts[0]), int(parts[1])
        seconds = float(parts[2])
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return round(((hours * 60 + minutes) * 60 + seconds) * 1_000_000)
