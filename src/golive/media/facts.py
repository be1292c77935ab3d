"""What the live pipeline shows of a broadcast: ladder, encoder, WebRTC output (stage: media).

Frozen snapshots taken on request; the API turns them into JSON at its edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from golive.media.progress import EncodeProgress
from golive.media.transcoder import TranscoderStats

__all__ = ["EncoderFacts", "PipelineFacts", "WebRtcOutputFacts"]


@dataclass(frozen=True, slots=True)
class EncoderFacts:
    """ffmpeg's latest progress report."""

    speed: float | None
    fps: float
    dropped_frames: int
    duplicated_frames: int

    @classmethod
    def from_progress(cls, progress: EncodeProgress) -> EncoderFacts:
        return cls(progress.speed, progress.fps, progress.drop_frames, progress.dup_frames)


@dataclass(frozen=True, slots=True)
class WebRtcOutputFacts:
    """The WebRTC-safe output of a broadcast with WHEP playback."""

    width: int
    height: int
    frame_rate: str  # ffmpeg's rational, e.g. "30000/1001"
    fragments: int  # handed to the output's sinks so far


@dataclass(frozen=True, slots=True)
class PipelineFacts:
    profile: str  # name@version
    renditions: tuple[str, ...]  # what is being produced now (fewer after a slow-encode drop)
    latency_mode: Literal["low", "standard"]
    encoder: EncoderFacts | None = None  # once ffmpeg has reported progress
    transcoder: TranscoderStats | None = None  # while a transcoder runs
    webrtc: WebRtcOutputFacts | None = None  # with WHEP playback
