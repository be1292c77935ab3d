"""Audio level and picture measurements of the ingest, from the transcoder's own graph (media).

The transcoder's ffmpeg graph has a small analysis branch (`command.filter_graph`):
the decoded audio in 100 ms blocks through `astats` (RMS and peak level of each block),
and the decoded picture at 2 fps scaled to 64x36 through `signalstats` (the 90th
percentile of luma). Their `metadata` print filters write one `key=value` line per
measurement to a pipe of their own; `LevelParser` (sans-IO) turns those bytes into
`AudioBlock`s and `PictureSample`s, and `LevelMeter` (pure, `now` passed in) keeps
what the alert rules and `/metrics` read: the level over the last second, how long
the audio has been silent or the picture black, and the share of blocks that clip.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = [
    "AUDIO_BLOCK_SAMPLES",
    "BLACK_LUMA",
    "CLIP_DBFS",
    "FLOOR_DBFS",
    "LUMA_KEY",
    "PEAK_KEY",
    "PICTURE_RATE",
    "PICTURE_SIZE",
    "RMS_KEY",
    "AudioBlock",
    "LevelFacts",
    "LevelMeter",
    "LevelParser",
    "PictureSample",
    "Reading",
]

AUDIO_BLOCK_SAMPLES = 4800  # one astats measurement per block: 100 ms at 48 kHz
PICTURE_RATE = 2  # pictures measured per second
PICTURE_SIZE = (64, 36)  # what a measured picture is scaled to first (cheap, and blurs noise)
FLOOR_DBFS = -120.0  # digital silence (astats says -inf) is reported as this
# A block whose peak reaches this is at full scale: clipped, or about to be. Not -0.1: a
# signal clipped before a lossy encoder comes out of AAC with its flat tops smoothed,
# peaking a few tenths of a dB under full scale (-0.3 dBFS for a sine driven +30 dB).
CLIP_DBFS = -1.0
# blackdetect's default pixel threshold (10% of the luma range above video black):
# a picture whose 90th-percentile luma is at or under it is (nearly) all black.
BLACK_LUMA = 16 + 0.1 * 219

RMS_KEY = "lavfi.astats.Overall.RMS_level"
PEAK_KEY = "lavfi.astats.Overall.Peak_level"
LUMA_KEY = "lavfi.signalstats.YHIGH"

_MAX_LINE = 256  # a real line is under 64 bytes
_LEVEL_WINDOW = 1.0  # seconds the reported RMS and peak span
_FLOWING = 2.0  # seconds after its last measurement a track still counts as flowing


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """One 100 ms block of the decoded audio, in dBFS (all channels together)."""

    rms_dbfs: float
    peak_dbfs: float


@dataclass(frozen=True, slots=True)
class PictureSample:
    """One measured picture: the 90th percentile of its luma (8-bit, limited range)."""

    luma_high: float

    @property
    def black(self) -> bool:
        return self.luma_high <= BLACK_LUMA


Reading = AudioBlock | PictureSample


class LevelParser:
    """Bytes from the analysis pipe in any chunking -> the measurements they complete.

    Never raises: unknown keys, frame header lines, unparsable values and overlong lines
    are skipped. A block's peak line comes before its RMS line; the RMS completes it.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipping = False
        self._peak: float | None = None

    def feed(self, data: bytes) -> list[Reading]:
        out: list[Reading] = []
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            chunk = data[start:newline]
            start = newline + 1
            if self._skipping:
                self._skipping = False
                self._partial.clear()
                continue
            line = bytes(self._partial + chunk)
            self._partial.clear()
            if len(line) <= _MAX_LINE:
                self._line(line, out)
        rest = data[start:]
        if not self._skipping:
            self._partial += rest
            if len(self._partial) > _MAX_LINE:
                self._partial.clear()
                self._skipping = True
        return out

    def _line(self, raw: bytes, out: list[Reading]) -> None:
        key, sep, value = raw.decode("ascii", "replace").strip().partition("=")
        if not sep:
            return
        if key == PEAK_KEY:
            self._peak = _dbfs(value)
        elif key == RMS_KEY:
            peak, self._peak = self._peak, None
            rms = _dbfs(value)
            if peak is not None and rms is not None:
                out.append(AudioBlock(rms, peak))
        elif key == LUMA_KEY:
            luma = _number(value)
            if luma is not None and 0 <= luma <= 255:
                out.append(PictureSample(luma))


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _dbfs(value: str) -> float | None:
    if value.strip().lower() in ("-inf", "-infinity"):
        return FLOOR_DBFS
    number = _number(value)
    # Decoded float audio can peak over full scale; nothing real is 100 dB over it.
    return None if number is None else max(FLOOR_DBFS, min(number, 100.0))


@dataclass(frozen=True, slots=True)
class LevelFacts:
    """The ingest's sound and picture at one moment (None: not measured lately)."""

    audio_rms_dbfs: float | None  # over the last second (power average of its blocks)
    audio_peak_dbfs: float | None  # the highest block peak of the last second
    silent_s: float | None  # how long every block has been under the silence level; 0: sound
    clipping_ratio: float | None  # share of the clip window's blocks that reached CLIP_DBFS
    black_s: float | None  # how long every picture has been black; 0: a picture
    luma_high: float | None  # the latest picture's 90th-percentile luma


class LevelMeter:
    """Keeps the latest measurements of one stream; pure (every call takes `now`)."""

    def __init__(self, *, silence_dbfs: float = -60.0, clip_window: float = 10.0) -> None:
        self.silence_dbfs = silence_dbfs
        self.clip_window = clip_window
        self._blocks: deque[tuple[float, AudioBlock]] = deque()
        self._audio_at: float | None = None
        self._sound_at: float | None = None  # the last block over the silence level
        self._silent_since: float | None = None
        self._picture_at: float | None = None
        self._picture: PictureSample | None = None
        self._black_since: float | None = None

    def add(self, now: float, reading: Reading) -> None:
        if isinstance(reading, AudioBlock):
            if self._audio_at is None or now - self._audio_at > _FLOWING:
                self._silent_since = None  # audio came back: judged afresh
            self._audio_at = now
            self._blocks.append((now, reading))
            horizon = now - max(self.clip_window, _LEVEL_WINDOW)
            while self._blocks and self._blocks[0][0] < horizon:
                self._blocks.popleft()
            if reading.rms_dbfs >= self.silence_dbfs:
                self._silent_since = None
            elif self._silent_since is None:
                self._silent_since = now
        else:
            if self._picture_at is None or now - self._picture_at > _FLOWING:
                self._black_since = None
            self._picture_at = now
            self._picture = reading
            if not reading.black:
                self._black_since = None
            elif self._black_since is None:
                self._black_since = now

    def facts(self, now: float) -> LevelFacts:
        rms = peak = silent = clipping = None
        if self._audio_at is not None and now - self._audio_at <= _FLOWING:
            recent = [b for at, b in self._blocks if at > now - _LEVEL_WINDOW]
            if recent:
                power = sum(10 ** (b.rms_dbfs / 10) for b in recent) / len(recent)
                rms = max(FLOOR_DBFS, 10 * math.log10(power)) if power > 0 else FLOOR_DBFS
                peak = max(b.peak_dbfs for b in recent)
            window = [b for at, b in self._blocks if at > now - self.clip_window]
            if window:
                clipping = sum(1 for b in window if b.peak_dbfs >= CLIP_DBFS) / len(window)
            silent = 0.0 if self._silent_since is None else now - self._silent_since
        black = luma = None
        if self._picture_at is not None and now - self._picture_at <= _FLOWING:
            black = 0.0 if self._black_since is None else now - self._black_since
            luma = self._picture.luma_high if self._picture is not None else None
        return LevelFacts(rms, peak, silent, clipping, black, luma)
