"""Annex-B byte streams: NAL units after start codes, and H.264 access units as FLV tags (ingest).

MPEG-TS (SRT) and RTP (WHIP) hand video over as Annex-B: NAL units after start
codes, parameter sets in band. `split_annexb` is the one splitter. FLV wants a
decoder configuration record (avcC, written by `golive.formats.codecs`) once per
parameter-set change and then length-prefixed NAL units; `AnnexBToFlv` does that
for WebRTC's H.264. Sans-IO: access units in, `MediaTag`s out, no clock.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from golive.formats.codecs import CodecError, avc_decoder_config, parse_h264_sps
from golive.formats.tag import MediaTag, TagType

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

_START_CODE = re.compile(b"\x00\x00\x01")
# Parameter sets and delimiters travel in the sequence header, not in frames.
_OUT_OF_BAND = {NAL_SPS, NAL_PPS, NAL_AUD}


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes or trailing zeros.

    Raises `CodecError` if the stream does not begin with a start code (zero bytes
    before it are allowed): the head of the access unit was lost, so nothing in it can
    be trusted. A caller that may join mid-unit skips to the first start code itself.
    """
    starts = [m.end() for m in _START_CODE.finditer(data)]
    if not starts or data[: starts[0] - 3].strip(b"\x00"):
        raise CodecError("access unit does not start with a start code")
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        # A NAL unit never ends in a zero byte (rbsp_trailing_bits ends in a 1), so
        # zeros before a start code are a four-byte start code's first byte or
        # trailing_zero_8bits.
        unit = data[start:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def _video_tag(keyframe: bool, packet_type: int, timestamp: int, payload: bytes) -> MediaTag:
    # FrameType (1 key, 2 inter) << 4 | CodecID 7 (AVC); CompositionTime 0: WebRTC
    # H.264 has no B-frames, so decode order is presentation order.
    header = bytes(((0x10 if keyframe else 0x20) | 7, packet_type, 0, 0, 0))
    return MediaTag(TagType.VIDEO, timestamp, header + payload)


@dataclass(frozen=True, slots=True)
class FrameVerdict:
    """What became of one access unit: the tags to push, and whether a keyframe is wanted."""

    tags: tuple[MediaTag, ...]
    need_keyframe: bool


class AnnexBToFlv:
    """Turns one H.264 stream's access units into FLV tags.

    Frames are held back until a keyframe arrives with SPS and PPS known (a decoder
    could do nothing with them), and again after a damaged access unit; while that
    lasts, `need_keyframe` asks the caller to request one from the sender (PLI).
    """

    def __init__(self) -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._config: bytes | None = None
        self._waiting_for_keyframe = True
        self.width: int | None = None
        self.height: int | None = None
        self.frames = 0
        self.dropped = 0

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting_for_keyframe

    def push(self, access_unit: bytes, timestamp: int) -> FrameVerdict:
        """One access unit with its decode time in milliseconds."""
        try:
            units = split_annexb(access_unit)
        except CodecError:
            self._waiting_for_keyframe = True
            self.dropped += 1
            return FrameVerdict((), True)
        tags: list[MediaTag] = []
        keyframe = False
        payload = bytearray()
        for unit in units:
            nal_type = unit[0] & 0x1F
            if nal_type == NAL_SPS:
                self._sps = unit
            elif nal_type == NAL_PPS:
                self._pps = unit
            elif nal_type == NAL_IDR:
                keyframe = True
            if nal_type not in _OUT_OF_BAND:
                payload += struct.pack(">I", len(unit)) + unit
        if self._sps is not None and self._pps is not None:
            try:
                config = avc_decoder_config((self._sps,), (self._pps,))
            except CodecError:
                # An SPS that does not parse: forget it and ask for a keyframe that
                # brings a good one, rather than let the publisher's bytes escape.
                self._sps = self._pps = None
                self._waiting_for_keyframe = True
                self.dropped += 1
                return FrameVerdict(tuple(tags), True)
            if config != self._config:
                self._config = config
                self._describe(self._sps)
                tags.append(_video_tag(True, 0, timestamp, config))
        if self._waiting_for_keyframe and not (keyframe and self._config is not None):
            self.dropped += 1
            return FrameVerdict(tuple(tags), True)
        self._waiting_for_keyframe = False
        if payload:
            tags.append(_video_tag(keyframe, 1, timestamp, bytes(payload)))
            self.frames += 1
        return FrameVerdict(tuple(tags), False)

    def _describe(self, sps: bytes) -> None:
        try:
            parsed = parse_h264_sps(sps)
        except CodecError:
            return
        self.width, self.height = parsed.width, parsed.height
