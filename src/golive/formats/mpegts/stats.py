"""The MPEG-TS demuxer's running counters (ingest).

Every layer (packets, PSI, PES, elementary streams) counts what it had to skip
here instead of raising, so an SRT publisher's damaged stream is visible without
ever closing the connection.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TsStats:
    """Running counters; everything damaged or unsupported is counted here, never raised."""

    packets: int = 0
    bytes_skipped: int = 0  # garbage between packets while (re)synchronising
    sync_losses: int = 0
    transport_errors: int = 0  # transport_error_indicator set
    scrambled_packets: int = 0
    malformed_packets: int = 0  # bad adaptation field
    cc_errors: int = 0
    duplicate_packets: int = 0
    psi_errors: int = 0  # PAT/PMT sections with a bad CRC or length
    pes_errors: int = 0  # PES headers that do not parse
    pes_dropped: int = 0  # PES lost for any reason: CC gap, truncation, oversize
    pes_oversized: int = 0
    timestamp_wraps: int = 0  # 33-bit PTS/DTS wraparounds unwrapped
    video_frames: int = 0
    video_skipped: int = 0  # before the first keyframe with parameter sets, or no slices
    parameter_set_errors: int = 0
    audio_frames: int = 0
    audio_skipped: int = 0  # before the stream started, or no timestamp yet
    adts_errors: int = 0  # audio frames that do not parse: AAC (ADTS, LATM), MPEG audio, AC-3...
    unsupported_streams: int = 0  # multichannel Opus, DTS, LPCM, ... in the PMT
