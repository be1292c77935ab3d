"""Timestamped media as it crosses from ingest to the rest of the pipeline (formats).

A broadcast's media is a sequence of FLV tags: RTMP message bodies of types 8
(audio), 9 (video) and 18 (script data) are FLV tag bodies byte for byte, and SRT
and WHIP ingest produce the same shape. Every consumer (transcoder, recorder,
tests) reads this one form.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TagType(enum.IntEnum):
    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


@dataclass(frozen=True, slots=True)
class MediaTag:
    """One FLV tag: `timestamp` is the decode time in milliseconds (32-bit, wraps)."""

    type: TagType
    timestamp: int
    body: bytes
