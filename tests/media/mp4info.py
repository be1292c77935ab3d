"""Just enough ISO-BMFF reading for the media tests to check ffmpeg's output independently
of `golive.formats.isobmff`: track timescales from the init, per-track timing from moofs."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            raise ValueError(f"bad box size {size} at {offset}")
        yield kind.decode("latin-1"), offset + header, offset + size
        offset += size


def child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    for k, s, e in boxes(data, start, end):
        if k == kind:
            return s, e
    return None


@dataclass(frozen=True)
class Track:
    track_id: int
    handler: str  # "vide" / "soun"
    timescale: int
    codec: str  # sample entry fourcc: avc1, mp4a
    width: int
    height: int


def read_init(data: bytes) -> dict[int, Track]:
    tracks: dict[int, Track] = {}
    moov = child(data, 0, len(data), "moov")
    assert moov is not None, "init has no moov"
    for kind, s, e in boxes(data, *moov):
        if kind != "trak":
            continue
        tkhd = child(data, s, e, "tkhd")
        mdia = child(data, s, e, "mdia")
        assert tkhd is not None and mdia is not None
        version = data[tkhd[0]]
        track_id = struct.unpack(">I", data[tkhd[0] + (20 if version else 12) :][:4])[0]
        width = struct.unpack(">I", data[tkhd[1] - 8 : tkhd[1] - 4])[0] >> 16
        height = struct.unpack(">I", data[tkhd[1] - 4 : tkhd[1]])[0] >> 16
        mdhd = child(data, *mdia, "mdhd")
        hdlr = child(data, *mdia, "hdlr")
        minf = child(data, *mdia, "minf")
        assert mdhd is not None and hdlr is not None and minf is not None
        version = data[mdhd[0]]
        timescale = struct.unpack(">I", data[mdhd[0] + (20 if version else 12) :][:4])[0]
        handler = data[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")
        stbl = child(data, *minf, "stbl")
        assert stbl is not None
        stsd = child(data, *stbl, "stsd")
        assert stsd is not None
        entry = next(boxes(data, stsd[0] + 8, stsd[1]))
        tracks[track_id] = Track(track_id, handler, timescale, entry[0], width, height)
    return tracks


@dataclass(frozen=True)
class TrackRun:
    track_id: int
    decode_time: int
    samples: int
    duration: int
    starts_with_sync: bool


def read_fragment(data: bytes) -> dict[int, TrackRun]:
    """Timing of each track in one moof (+mdat)."""
    moof = child(data, 0, len(data), "moof")
    assert moof is not None, "fragment has no moof"
    runs: dict[int, TrackRun] = {}
    for kind, s, e in boxes(data, *moof):
        if kind != "traf":
            continue
        track_id = 0
        default_duration = 0
        default_flags = 0
        decode_time = 0
        samples = duration = 0
        first_flags: int | None = None
        for k, ps, _ in boxes(data, s, e):
            flags = int.from_bytes(data[ps + 1 : ps + 4], "big")
            version = data[ps]
            if k == "tfhd":
                track_id = struct.unpack(">I", data[ps + 4 : ps + 8])[0]
                q = ps + 8
                if flags & 0x01:
                    q += 8
                if flags & 0x02:
                    q += 4
                if flags & 0x08:
                    default_duration = struct.unpack(">I", data[q : q + 4])[0]
                    q += 4
                if flags & 0x10:
                    q += 4
                if flags & 0x20:
                    default_flags = struct.unpack(">I", data[q : q + 4])[0]
            elif k == "tfdt":
                fmt = ">Q" if version == 1 else ">I"
                decode_time = struct.unpack(fmt, data[ps + 4 : ps + (12 if version == 1 else 8)])[0]
            elif k == "trun":
                count = struct.unpack(">I", data[ps + 4 : ps + 8])[0]
                q = ps + 8
                if flags & 0x01:
                    q += 4
                if flags & 0x04:
                    first_flags = struct.unpack(">I", data[q : q + 4])[0]
                    q += 4
                for i in range(count):
                    d = default_duration
                    if flags & 0x100:
                        d = struct.unpack(">I", data[q : q + 4])[0]
                        q += 4
                    if flags & 0x200:
                        q += 4
                    if flags & 0x400:
                        if i == 0 and first_flags is None:
                            first_flags = struct.unpack(">I", data[q : q + 4])[0]
                        q += 4
                    if flags & 0x800:
                        q += 4
                    duration += d
                samples += count
        sample_flags = default_flags if first_flags is None else first_flags
        sync = not (sample_flags >> 16) & 1  # sample_is_non_sync_sample
        runs[track_id] = TrackRun(track_id, decode_time, samples, duration, sync)
    return runs
