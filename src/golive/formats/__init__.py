"""Media formats every stage shares: pure, sans-IO parsers and writers (formats).

Codec parameter sets and codec strings, FLV tags, MPEG-TS, Annex-B/AVCC, ISO-BMFF
boxes and AMF0. Nothing here reads a clock, touches a socket or knows a stream.
"""

from golive.formats.tag import MediaTag, TagType

__all__ = ["MediaTag", "TagType"]
