"""Closed captions carried in the picture: CEA-608/708 in H.264 and HEVC SEI (formats).

Broadcast encoders, OBS and SDI capture cards send captions as ATSC A/53 `cc_data` in a
registered user data SEI message (ITU-T T.35: country 0xB5, provider 0x0031, "GA94",
type 3). The transcoder's encoder carries them into every rendition (x264/NVENC `a53cc`);
this only finds out whether a source sends them, so the playlists can say so.
"""

from __future__ import annotations

__all__ = ["carries_captions"]

_A53_CC_DATA = b"\xb5\x00\x31GA94\x03"  # T.35 USA, ATSC, "GA94", user_data_type_code 3
_H264_SEI = 6
_HEVC_PREFIX_SEI = 39


def carries_captions(nal_units: bytes | memoryview, *, hevc: bool = False,
                     length_size: int = 4) -> bool:
    """Whether a frame's length-prefixed NAL units (FLV/MP4 framing) include an SEI with
    A/53 caption data. Malformed framing is no captions, never an error."""
    data = memoryview(nal_units)
    end = len(data)
    pos = 0
    while pos + length_size < end:
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0 or pos + size > end:
            return False
        header = data[pos]
        kind = (header >> 1) & 0x3F if hevc else header & 0x1F
        # (The signature has no two zero bytes in a row, so emulation prevention never
        # splits it: it is found in the escaped NAL as it is.)
        if (kind == (_HEVC_PREFIX_SEI if hevc else _H264_SEI)
                and _A53_CC_DATA in bytes(data[pos : pos + size])):
            return True
        pos += size
    return False
