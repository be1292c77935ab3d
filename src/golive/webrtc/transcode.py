"""The two WebRTC codecs FLV cannot carry to the transcoder, converted once (ingest).

Browsers send Opus audio and often VP8 video; the broadcast's FLV form (and the
ffmpeg ladder reading it) takes AAC and H.264. `OpusToAac` decodes Opus and
encodes AAC-LC once per broadcast (cheap: about 1% of a core). `Vp8ToH264`
decodes VP8 and encodes H.264 with x264 ultrafast/zerolatency: a full video
encode, so it is used only for VP8 publishers; H.264 publishers are passed
through without decoding (`golive.formats.annexb`).

Both are synchronous and CPU-bound: the WHIP session runs them on a worker thread.
"""

from __future__ import annotations

import fractions
import struct
from typing import Any

import av

from golive.formats import AnnexBToFlv, MediaTag, TagType

OPUS_RATE = 48_000
AAC_FRAME = 1024
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
              8000, 7350)
# SoundFormat 10 (AAC) << 4 | 44 kHz | 16-bit | stereo: FLV's fixed header for AAC.
_AAC_TAG = 0xAF


def audio_specific_config(sample_rate: int, channels: int) -> bytes:
    """ISO/IEC 14496-3 AudioSpecificConfig for AAC-LC."""
    index = _AAC_RATES.index(sample_rate)
    return struct.pack(">H", (2 << 11) | (index << 7) | (channels << 3))


class OpusToAac:
    """Opus packets (RTP timestamps, 48 kHz) in, AAC FLV tags out.

    The AAC timeline is the Opus one: `origin_ms` is where RTP timestamp 0 falls on
    the broadcast's clock. A gap in the Opus timestamps (packet loss, DTX) moves the
    AAC timeline forward instead of stretching the audio.
    """

    def __init__(self, origin_ms: float, *, bit_rate: int = 128_000) -> None:
        self._origin_ms = origin_ms
        self._decoder: Any = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = OPUS_RATE
        self._decoder.layout = "stereo"
        self._resampler = av.AudioResampler(
            format="fltp", layout="stereo", rate=OPUS_RATE, frame_size=AAC_FRAME
        )
        self._encoder: Any = av.CodecContext.create("aac", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "fltp"
        self._encoder.bit_rate = bit_rate
        self._encoder.time_base = fractions.Fraction(1, OPUS_RATE)
        self._header_sent = False
        self._samples_in = 0  # samples handed to the encoder so far
        self._offset = 0  # RTP timestamp of input sample 0 (grows at gaps)
        self._next_rtp: int | None = None

    def push(self, payload: bytes, rtp_timestamp: int) -> list[MediaTag]:
        if self._next_rtp is None:
            self._offset = rtp_timestamp
        elif abs(rtp_timestamp - self._next_rtp) > OPUS_RATE // 10:
            self._offset += rtp_timestamp - self._next_rtp
        packet = av.Packet(payload)
        packet.pts = rtp_timestamp
        packet.time_base = fractions.Fraction(1, OPUS_RATE)
        tags: list[MediaTag] = []
        for frame in self._decoder.decode(packet):
            self._next_rtp = rtp_timestamp + frame.samples
            frame.pts = None
            for chunk in self._resampler.resample(frame):
                chunk.pts = self._samples_in
                self._samples_in += chunk.samples
                tags += self._encode(chunk)
        return tags

    def _encode(self, frame: Any) -> list[MediaTag]:
        tags = []
        for packet in self._encoder.encode(frame):
            if not self._header_sent:
                config = bytes(self._encoder.extradata or b"") or audio_specific_config(
                    OPUS_RATE, 2
                )
                tags.append(MediaTag(TagType.AUDIO, self._ms(0), bytes((_AAC_TAG, 0)) + config))
                self._header_sent = True
            pts = max(0, packet.pts or 0)
            tags.append(MediaTag(TagType.AUDIO, self._ms(pts), bytes((_AAC_TAG, 1)) + bytes(packet)))
        return tags

    def _ms(self, sample: int) -> int:
        return max(0, round(self._origin_ms + (self._offset + sample) * 1000 / OPUS_RATE))


class Vp8ToH264:
    """VP8 frames (RTP timestamps, 90 kHz) in, H.264 FLV tags out: one decode, one encode."""

    def __init__(self, origin_ms: float, *, bit_rate: int = 2_500_000, gop: int = 60) -> None:
        self._origin_ms = origin_ms
        self._decoder: Any = av.CodecContext.create("vp8", "r")
        self._encoder: Any = None
        self._size: tuple[int, int] | None = None
        self._bit_rate = bit_rate
        self._gop = gop
        self._flv = AnnexBToFlv()
        self.need_keyframe = True

    def push(self, payload: bytes, rtp_timestamp: int) -> list[MediaTag]:
        packet = av.Packet(payload)
        packet.pts = rtp_timestamp
        packet.time_base = fractions.Fraction(1, 90_000)
        tags: list[MediaTag] = []
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            self.need_keyframe = True
            return tags
        self.need_keyframe = False
        for frame in frames:
            size = (frame.width - frame.width % 2, frame.height - frame.height % 2)
            if self._encoder is None or size != self._size:
                self._encoder = self._open_encoder(*size)
                self._size = size
            image = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            image.pts = rtp_timestamp
            image.time_base = fractions.Fraction(1, 90_000)
            for out in self._encoder.encode(image):
                ms = max(0, round(self._origin_ms + (out.pts or 0) / 90))
                tags += self._flv.push(bytes(out), ms).tags
        return tags

    def _open_encoder(self, width: int, height: int) -> Any:
        encoder: Any = av.CodecContext.create("libx264", "w")
        encoder.width = width
        encoder.height = height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = fractions.Fraction(1, 90_000)
        encoder.bit_rate = self._bit_rate
        encoder.gop_size = self._gop
        encoder.max_b_frames = 0
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "main"}
        return encoder
