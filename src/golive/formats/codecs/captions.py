"""Closed captions carried in the picture: CEA-608/708 in H.264 and HEVC SEI (formats).

Broadcast encoders, OBS and SDI capture cards send captions as ATSC A/53 `cc_data` in a
registered user data SEI message (ITU-T T.35: country 0xB5, provider 0x0031, "GA94",
type 3). The transcoder's encoder carries them into every rendition (x264/NVENC `a53cc`);
this finds out whether a source sends them (`carries_captions`), and on which CEA-608
channels (`caption_channels`: CC1 and CC2 in the first field's data, CC3 and CC4 in the
second's, as a control code of the caption stream names its channel), so the playlists
can offer each.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["CAPTION_CHANNELS", "caption_channels", "carries_captions"]

CAPTION_CHANNELS = ("CC1", "CC2", "CC3", "CC4")

_A53_CC_DATA = b"\xb5\x00\x31GA94\x03"  # T.35 USA, ATSC, "GA94", user_data_type_code 3
_H264_SEI = 6
_HEVC_PREFIX_SEI = 39


def carries_captions(nal_units: bytes | memoryview, *, hevc: bool = False,
                     length_size: int = 4) -> bool:
    """Whether a frame's length-prefixed NAL units (FLV/MP4 framing) include an SEI with
    A/53 caption data. Malformed framing is no captions, never an error."""
    return next(_caption_seis(nal_units, hevc, length_size), None) is not None


def caption_channels(nal_units: bytes | memoryview, *, hevc: bool = False,
                     length_size: int = 4) -> frozenset[str]:
    """The CEA-608 channels a frame's caption data names (`CAPTION_CHANNELS`): each valid
    608 byte pair that is a control code (0x10-0x1F then 0x20-0x7F, parity stripped) says
    its channel, bit 3 of its first byte picking the field's second channel. Malformed
    framing or SEI is no channel, never an error."""
    found: set[str] = set()
    for nal in _caption_seis(nal_units, hevc, length_size):
        _sei_channels(_unescape(nal[2 if hevc else 1 :]), found)
    return frozenset(found)


def _caption_seis(nal_units: bytes | memoryview, hevc: bool,
                  length_size: int) -> Iterator[bytes]:
    """Each SEI NAL unit (as it is, escaped) of a frame that holds A/53 caption data; the
    walk stops at framing that runs past the frame."""
    data = memoryview(nal_units)
    end = len(data)
    pos = 0
    while pos + length_size < end:
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0 or pos + size > end:
            return
        header = data[pos]
        kind = (header >> 1) & 0x3F if hevc else header & 0x1F
        # (The signature has no two zero bytes in a row, so emulation prevention never
        # splits it: it is found in the escaped NAL as it is.)
        if kind == (_HEVC_PREFIX_SEI if hevc else _H264_SEI):
            nal = bytes(data[pos : pos + size])
            if _A53_CC_DATA in nal:
                yield nal
        pos += size


def _unescape(escaped: bytes) -> bytes:
    """The RBSP of a NAL unit's payload: each emulation prevention byte (00 00 03) removed."""
    if b"\x00\x00\x03" not in escaped:
        return escaped
    out = bytearray()
    zeros = 0
    for byte in escaped:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sei_channels(rbsp: bytes, found: set[str]) -> None:
    """Each A/53 cc_data message of an SEI's messages, its 608 channels added to `found`."""
    pos, end = 0, len(rbsp)
    while pos < end and rbsp[pos] != 0x80:  # the trailing bits end the messages
        kind = size = 0
        while pos < end and rbsp[pos] == 0xFF:
            kind, pos = kind + 255, pos + 1
        if pos >= end:
            return
        kind, pos = kind + rbsp[pos], pos + 1
        while pos < end and rbsp[pos] == 0xFF:
            size, pos = size + 255, pos + 1
        if pos >= end:
            return
        size, pos = size + rbsp[pos], pos + 1
        payload = rbsp[pos : pos + size]
        pos += size
        if kind != 4 or not payload.startswith(_A53_CC_DATA) or len(payload) < 10:
            continue
        flags = payload[len(_A53_CC_DATA)]
        if not flags & 0x40:  # process_cc_data_flag
            continue
        first = len(_A53_CC_DATA) + 2  # the flags, then em_data
        for triplet in range(flags & 0x1F):
            at = first + 3 * triplet
            if at + 3 > len(payload):
                break
            marker, one, two = payload[at], payload[at + 1] & 0x7F, payload[at + 2] & 0x7F
            cc_type = marker & 0x03
            if not marker & 0x04 or cc_type > 1:  # not valid, or DTVCC (708) data
                continue
            if 0x10 <= one <= 0x1F and 0x20 <= two <= 0x7F:
                found.add(CAPTION_CHANNELS[2 * cc_type + (1 if one & 0x08 else 0)])
