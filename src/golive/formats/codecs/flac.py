"""FLAC's STREAMINFO and a silent FLAC frame (formats): gaps in a publisher's FLAC sound
are filled with frames of its own configuration, as AAC, MPEG audio, Opus and AC-3 gaps
are.

A frame (RFC 9639 9) whose every channel is a CONSTANT subframe of value 0 decodes to
`block size` samples of zeros per channel. Its header states the block size (16 bits),
the sample rate and sample size by their codes where the tables have them (else "from
STREAMINFO"), independent channels, frame number 0, and its CRC-8; the frame ends with
its CRC-16 (A/52's polynomial).
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.ac3 import crc16
from golive.formats.codecs.bits import BitReader, BitWriter, Buffer, CodecError

__all__ = ["StreamInfo", "flac_silent_frame", "parse_streaminfo"]

_STREAMINFO_SIZE = 34
_RATE_CODES = {88200: 1, 176400: 2, 192000: 3, 8000: 4, 16000: 5, 22050: 6, 24000: 7,
               32000: 8, 44100: 9, 48000: 10, 96000: 11}
_DEPTH_CODES = {8: 1, 12: 2, 16: 4, 20: 5, 24: 6, 32: 7}
_BLOCK_SIZE_16_BITS = 0b0111  # the block size less one follows the frame number
_CONSTANT = 0b000000


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a FLAC STREAMINFO block says of the stream (RFC 9639 8.2)."""

    min_block_size: int
    max_block_size: int
    sample_rate: int
    channels: int
    bits_per_sample: int


def parse_streaminfo(header: Buffer) -> StreamInfo:
    """A FLAC sequence header: metadata blocks, STREAMINFO first, after the "fLaC" marker
    or a dfLa box's version and flags, or the bare 34-byte STREAMINFO (ffmpeg's FLV)."""
    data = bytes(header)
    if data.startswith(b"fLaC"):
        data = data[4:]
    elif len(data) >= 4 and data[:4] == b"\x00\x00\x00\x00" and len(data) >= 42:
        data = data[4:]  # dfLa FullBox version/flags
    if len(data) == _STREAMINFO_SIZE:
        data = bytes(4) + data  # (as the block it would be)
    if len(data) < 4 + _STREAMINFO_SIZE or (data[0] & 0x7F) != 0:
        raise CodecError("FLAC sequence header without STREAMINFO")
    r = BitReader(data[4 : 4 + _STREAMINFO_SIZE])
    min_block, max_block = r.u(16), r.u(16)
    r.skip(48)  # minimum and maximum frame sizes
    rate, channels, bits = r.u(20), r.u(3) + 1, r.u(5) + 1
    return StreamInfo(min_block, max_block, rate, channels, bits)


def flac_silent_frame(info: StreamInfo) -> tuple[bytes, int] | None:
    """A frame of silence for this stream, and its samples per channel (the stream's
    block size); None where there is none to write: a stream whose block size varies
    (its frames number samples, not frames, and a frame of another strategy would be
    out of place), a rate of 0, a sample size under 4 bits."""
    block = info.max_block_size
    if (info.min_block_size != block or block < 16 or not info.sample_rate
            or info.bits_per_sample < 4):
        return None
    w = BitWriter()
    w.put(0b11111111111110, 14)  # sync code
    w.put(0, 1)  # reserved
    w.put(0, 1)  # blocking strategy: fixed
    w.put(_BLOCK_SIZE_16_BITS, 4)
    w.put(_RATE_CODES.get(info.sample_rate, 0), 4)  # 0: from STREAMINFO
    w.put(info.channels - 1, 4)  # independent channels
    w.put(_DEPTH_CODES.get(info.bits_per_sample, 0), 3)  # 0: from STREAMINFO
    w.put(0, 1)  # reserved
    w.put(0, 8)  # frame number 0, UTF-8 coded
    w.put(block - 1, 16)
    head = w.to_bytes()
    w.put(_crc8(head), 8)
    for _ in range(info.channels):
        w.put(0, 1)  # padding
        w.put(_CONSTANT, 6)
        w.put(0, 1)  # no wasted bits
        w.put(0, info.bits_per_sample)  # the constant: 0
    frame = w.to_bytes()  # (zero bits to a whole byte)
    return frame + crc16(frame).to_bytes(2, "big"), block


def _crc8(data: bytes) -> int:
    """CRC-8 with x^8 + x^2 + x + 1, initial value 0 (a frame header's)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
