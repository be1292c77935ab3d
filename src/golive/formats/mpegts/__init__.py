"""MPEG-TS demuxing into FLV-shaped media: what SRT publishers send, as RTMP tags (ingest).

`TsDemuxer` (in `demux`) is the entry point; `packets`, `psi` and `pes` read the
transport layers beneath it (ISO/IEC 13818-1). Sans-IO, and nothing a publisher
sends makes it raise: damage is counted in `TsStats`.
"""

from golive.formats.mpegts.demux import (
    DEFAULT_AUDIO_LEAD_MS,
    DEFAULT_MAX_PES_SIZE,
    TsDemuxer,
    TsError,
    TsProgram,
)
from golive.formats.mpegts.packets import PACKET_SIZE, SYNC_BYTE
from golive.formats.mpegts.psi import (
    STREAM_TYPE_AAC_ADTS,
    STREAM_TYPE_AAC_LATM,
    STREAM_TYPE_H264,
    STREAM_TYPE_HEVC,
    ElementaryStream,
    crc32_mpeg2,
)
from golive.formats.mpegts.stats import TsStats

__all__ = [
    "DEFAULT_AUDIO_LEAD_MS",
    "DEFAULT_MAX_PES_SIZE",
    "PACKET_SIZE",
    "STREAM_TYPE_AAC_ADTS",
    "STREAM_TYPE_AAC_LATM",
    "STREAM_TYPE_H264",
    "STREAM_TYPE_HEVC",
    "SYNC_BYTE",
    "ElementaryStream",
    "TsDemuxer",
    "TsError",
    "TsProgram",
    "TsStats",
    "crc32_mpeg2",
]
