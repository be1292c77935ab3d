"""Fragmented MP4 (ISO-BMFF / CMAF) reading for the packager (stage: packaging).

Sans-IO: `FragmentReader.feed` takes bytes in any chunking and returns the init
segments (ftyp + moov) and fragments (moof + mdat) found in them, with the facts the
playlists need: codecs (RFC 6381), resolution, timing and whether a fragment starts
with a sync sample. The media bytes themselves are passed through verbatim.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Fragment",
    "FragmentReader",
    "InitSegment",
    "IsobmffError",
    "Sample",
    "TrackInfo",
    "fragment_samples",
]

MAX_BOX_SIZE = 64 * 1024 * 1024
"""Largest top-level box accepted; a live fragment is far smaller, and the reader buffers it."""

_MAX_DEPTH = 8
_SAMPLE_NON_SYNC = 0x0001_0000  # sample_is_non_sync_sample in the sample flags


class IsobmffError(ValueError):
    """The byte stream is not a fragmented MP4 this reader can follow."""


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One track of an init segment."""

    track_id: int
    kind: str  # "video" | "audio" | "other"
    timescale: int
    codec: str  # RFC 6381, e.g. "avc1.64001f", "mp4a.40.2"
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class InitSegment:
    """ftyp + moov, verbatim, and what they declare."""

    data: bytes
    tracks: tuple[TrackInfo, ...]

    @property
    def codecs(self) -> str:
        """The CODECS attribute value: every track's codec, comma joined."""
        return ",".join(track.codec for track in self.tracks if track.kind != "other")

    @property
    def video(self) -> TrackInfo | None:
        """The first video track, if any."""
        return next((track for track in self.tracks if track.kind == "video"), None)


@dataclass(frozen=True, slots=True)
class Fragment:
    """One movie fragment (any styp/prft/emsg/sidx before it + moof + mdat), verbatim."""

    data: bytes
    sequence_number: int
    independent: bool  # the video track's first sample is a sync sample (True without video)
    decode_time: float  # seconds: the video track's baseMediaDecodeTime, else the first track's
    duration: float  # seconds: the longest track's sum of sample durations


@dataclass(frozen=True, slots=True)
class _Defaults:
    duration: int
    flags: int


@dataclass(frozen=True, slots=True)
class _TrackRun:
    decode_time: int
    duration: int
    first_flags: int | None


# Box walking ------------------------------------------------------------------------


def _u8(data: bytes, offset: int, end: int) -> int:
    if offset + 1 > end:
        raise IsobmffError("box truncated")
    return data[offset]


def _u16(data: bytes, offset: int, end: int) -> int:
    if offset + 2 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 2], "big")


def _u32(data: bytes, offset: int, end: int) -> int:
    if offset + 4 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 4], "big")


def _u64(data: bytes, offset: int, end: int) -> int:
    if offset + 8 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 8], "big")


def _header(data: bytes | bytearray, offset: int, end: int) -> tuple[str, int, int] | None:
    """(type, header size, box size) of the box at offset, or None if the header is incomplete."""
    if end - offset < 8:
        return None
    size = int.from_bytes(data[offset : offset + 4], "big")
    kind = bytes(data[offset + 4 : offset + 8]).decode("latin-1")
    header = 8
    if size == 1:
        if end - offset < 16:
            return None
        size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        header = 16
    elif size == 0:
        raise IsobmffError(
            f"box {kind!r} runs to the end of the stream, which a live stream has not"
        )
    if size < header:
        raise IsobmffError(f"box {kind!r} has an impossible size {size}")
    return kind, header, size


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]; all must fit exactly."""
    offset = start
    while offset < end:
        header = _header(data, offset, end)
        if header is None:
            raise IsobmffError("box header truncated")
        kind, header_size, size = header
        if offset + size > end:
            raise IsobmffError(f"box {kind!r} overruns its parent")
        yield kind, offset + header_size, offset + size
        offset += size


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    for found, payload, box_end in _children(data, start, end):
        if found == kind:
            return payload, box_end
    return None


# Init segment -------------------------------------------------------------------------


def _parse_init(
    data: bytes, moov: tuple[int, int]
) -> tuple[tuple[TrackInfo, ...], dict[int, _Defaults]]:
    tracks: list[TrackInfo] = []
    defaults: dict[int, _Defaults] = {}
    for kind, start, end in _children(data, *moov):
        if kind == "trak":
            tracks.append(_parse_trak(data, start, end))
        elif kind == "mvex":
            for inner, s, e in _children(data, start, end):
                if inner == "trex":
                    track_id = _u32(data, s + 4, e)
                    defaults[track_id] = _Defaults(_u32(data, s + 12, e), _u32(data, s + 20, e))
    if not tracks:
        raise IsobmffError("moov declares no tracks")
    return tuple(tracks), defaults


def _parse_trak(data: bytes, start: int, end: int) -> TrackInfo:
    tkhd = _child(data, start, end, "tkhd")
    mdia = _child(data, start, end, "mdia")
    if tkhd is None or mdia is None:
        raise IsobmffError("trak without tkhd or mdia")
    version = _u8(data, tkhd[0], tkhd[1])
    track_id = _u32(data, tkhd[0] + (20 if version == 1 else 12), tkhd[1])
    # tkhd ends with width and height as 16.16 fixed point
    tk_width = _u32(data, tkhd[1] - 8, tkhd[1]) >> 16 if tkhd[1] - tkhd[0] >= 84 else 0
    tk_height = _u32(data, tkhd[1] - 4, tkhd[1]) >> 16 if tkhd[1] - tkhd[0] >= 84 else 0
    mdhd = _child(data, *mdia, "mdhd")
    hdlr = _child(data, *mdia, "hdlr")
    if mdhd is None or hdlr is None:
        raise IsobmffError(f"track {track_id} without mdhd or hdlr")
    version = _u8(data, mdhd[0], mdhd[1])
    timescale = _u32(data, mdhd[0] + (20 if version == 1 else 12), mdhd[1])
    if timescale == 0:
        raise IsobmffError(f"track {track_id} has timescale 0")
    handler = bytes(data[hdlr[0] + 8 : hdlr[0] + 12]).decode("latin-1")
    kind = {"vide": "video", "soun": "audio"}.get(handler, "other")
    codec = ""
    width: int | None = None
    height: int | None = None
    minf = _child(data, *mdia, "minf")
    stbl = _child(data, *minf, "stbl") if minf is not None else None
    stsd = _child(data, *stbl, "stsd") if stbl is not None else None
    if stsd is not None and stsd[1] - stsd[0] > 8:
        entry_kind, entry_start, entry_end = next(_children(data, stsd[0] + 8, stsd[1]))
        if kind == "video":
            codec, width, height = _visual_entry(data, entry_kind, entry_start, entry_end)
        elif kind == "audio":
            codec = _audio_entry(data, entry_kind, entry_start, entry_end)
        else:
            codec = entry_kind
    if kind == "video":
        width = width or tk_width or None
        height = height or tk_height or None
    return TrackInfo(track_id, kind, timescale, codec or "unknown", width, height)


def _visual_entry(data: bytes, fourcc: str, start: int, end: int) -> tuple[str, int, int]:
    # SampleEntry (8) + VisualSampleEntry fields (70) before the child boxes
    width = _u16(data, start + 24, end)
    height = _u16(data, start + 26, end)
    codec = fourcc
    boxes = (
        {kind: (s, e) for kind, s, e in _children(data, start + 78, end)}
        if end - start > 78
        else {}
    )
    if fourcc in ("avc1", "avc3") and "avcC" in boxes:
        s, e = boxes["avcC"]
        codec = (
            f"{fourcc}.{_u8(data, s + 1, e):02x}{_u8(data, s + 2, e):02x}{_u8(data, s + 3, e):02x}"
        )
    elif fourcc in ("hvc1", "hev1") and "hvcC" in boxes:
        codec = _hevc_codec(data, fourcc, *boxes["hvcC"])
    elif fourcc == "av01" and "av1C" in boxes:
        codec = _av1_codec(data, *boxes["av1C"])
    return codec, width, height


def _hevc_codec(data: bytes, fourcc: str, start: int, end: int) -> str:
    """ISO/IEC 14496-15 Annex E: hvc1.<space><profile>.<compat>.<tier><level>.<constraints>."""
    if end - start < 13:
        raise IsobmffError("hvcC truncated")
    byte = data[start + 1]
    space = ("", "A", "B", "C")[byte >> 6]
    tier = "H" if byte & 0x20 else "L"
    profile = byte & 0x1F
    compat = int.from_bytes(data[start + 2 : start + 6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    level = data[start + 12]
    constraints = list(data[start + 6 : start + 12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [fourcc, f"{space}{profile}", f"{reversed_compat:X}", f"{tier}{level}"]
    parts += [f"{c:X}" for c in constraints]
    return ".".join(parts)


def _av1_codec(data: bytes, start: int, end: int) -> str:
    """AV1 ISOBMFF binding: av01.<profile>.<level><tier>.<bitdepth>."""
    if end - start < 3:
        raise IsobmffError("av1C truncated")
    profile = data[start + 1] >> 5
    level = data[start + 1] & 0x1F
    flags = data[start + 2]
    tier = "H" if flags & 0x80 else "M"
    high_bitdepth = bool(flags & 0x40)
    twelve_bit = bool(flags & 0x20)
    depth = 12 if (profile == 2 and high_bitdepth and twelve_bit) else 10 if high_bitdepth else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def _audio_entry(data: bytes, fourcc: str, start: int, end: int) -> str:
    if fourcc == "mp4a":
        # SampleEntry (8) + AudioSampleEntry fields (20); QuickTime sound v1/v2 add more
        version = _u16(data, start + 8, end)
        offset = start + 28 + {1: 16, 2: 36}.get(version, 0)
        esds = _child(data, offset, end, "esds") if end > offset else None
        return _mp4a_codec(data, *esds) if esds is not None else "mp4a.40.2"
    if fourcc == "Opus":
        return "Opus"
    return fourcc


def _descriptor(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (ISO/IEC 14496-1)."""
    tag = _u8(data, offset, end)
    offset += 1
    length = 0
    for _ in range(4):
        byte = _u8(data, offset, end)
        offset += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    if offset + length > end:
        raise IsobmffError("esds descriptor overruns its box")
    return tag, offset, offset + length


def _mp4a_codec(data: bytes, start: int, end: int) -> str:
    tag, s, e = _descriptor(data, start + 4, end)  # after the FullBox header
    if tag != 0x03:
        return "mp4a.40.2"
    flags = _u8(data, s + 2, e)
    s += 3
    if flags & 0x80:
        s += 2
    if flags & 0x40:
        s += 1 + _u8(data, s, e)
    if flags & 0x20:
        s += 2
    tag, s, e = _descriptor(data, s, e)
    if tag != 0x04:
        return "mp4a.40.2"
    object_type = _u8(data, s, e)
    if object_type != 0x40:  # not MPEG-4 Audio (e.g. 0x6B MP3): the OTI alone
        return f"mp4a.{object_type:02x}"
    s += 13
    if s >= e:
        return "mp4a.40.2"
    tag, s, e = _descriptor(data, s, e)
    if tag != 0x05 or e - s < 1:
        return "mp4a.40.2"
    aot = data[s] >> 3
    if aot == 31:  # escape: 6 more bits
        if e - s < 2:
            return "mp4a.40.2"
        aot = 32 + (((data[s] & 0x07) << 3) | (data[s + 1] >> 5))
    return f"mp4a.40.{aot}" if aot else "mp4a.40.2"


# Fragments ----------------------------------------------------------------------------


def _parse_moof(
    data: bytes, start: int, end: int, defaults: dict[int, _Defaults]
) -> tuple[int, dict[int, _TrackRun]]:
    sequence = -1
    runs: dict[int, _TrackRun] = {}
    for kind, s, e in _children(data, start, end):
        if kind == "mfhd":
            sequence = _u32(data, s + 4, e)
        elif kind == "traf":
            track_id, run = _parse_traf(data, s, e, defaults)
            previous = runs.get(track_id)
            if previous is not None:
                run = _TrackRun(
                    previous.decode_time, previous.duration + run.duration, previous.first_flags
                )
            runs[track_id] = run
    if sequence < 0:
        raise IsobmffError("moof without mfhd")
    if not runs:
        raise IsobmffError("moof without traf")
    return sequence, runs


def _parse_traf(
    data: bytes, start: int, end: int, defaults: dict[int, _Defaults]
) -> tuple[int, _TrackRun]:
    tfhd = _child(data, start, end, "tfhd")
    if tfhd is None:
        raise IsobmffError("traf without tfhd")
    s, e = tfhd
    flags = _u32(data, s, e) & 0xFFFFFF
    track_id = _u32(data, s + 4, e)
    if track_id not in defaults:
        raise IsobmffError(f"fragment names track {track_id}, which the init does not declare")
    default_duration = defaults[track_id].duration
    default_flags = defaults[track_id].flags
    q = s + 8
    if flags & 0x01:
        q += 8
    if flags & 0x02:
        q += 4
    if flags & 0x08:
        default_duration = _u32(data, q, e)
        q += 4
    if flags & 0x10:
        q += 4
    if flags & 0x20:
        default_flags = _u32(data, q, e)
    decode_time = 0
    duration = 0
    first_flags: int | None = None
    seen_sample = False
    for kind, s, e in _children(data, start, end):
        if kind == "tfdt":
            version = _u8(data, s, e)
            decode_time = _u64(data, s + 4, e) if version == 1 else _u32(data, s + 4, e)
        elif kind == "trun":
            run_flags = _u32(data, s, e) & 0xFFFFFF
            count = _u32(data, s + 4, e)
            q = s + 8
            if run_flags & 0x01:
                q += 4
            run_first: int | None = None
            if run_flags & 0x04:
                run_first = _u32(data, q, e)
                q += 4
            per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if run_flags & bit)
            if q + per_sample * count > e:
                raise IsobmffError("trun sample table overruns its box")
            if run_flags & 0x100:
                duration += sum(_u32(data, q + i * per_sample, e) for i in range(count))
            else:
                duration += default_duration * count
            if count and not seen_sample:
                seen_sample = True
                if run_first is not None:
                    first_flags = run_first
                elif run_flags & 0x400:
                    offset = 4 * sum(1 for bit in (0x100, 0x200) if run_flags & bit)
                    first_flags = _u32(data, q + offset, e)
                else:
                    first_flags = default_flags
    return track_id, _TrackRun(decode_time, duration, first_flags)


def _is_sync(flags: int | None) -> bool:
    # An I-frame that only sample_depends_on marks independent but that is flagged non-sync is
    # an open-GOP picture: not a clean start for a segment, so only the sync flag counts.
    return flags is not None and not flags & _SAMPLE_NON_SYNC


# The reader ---------------------------------------------------------------------------


class FragmentReader:
    """Splits a fragmented MP4 byte stream into init segments and fragments.

    Boxes before a moof (styp, prft, emsg, sidx, free, ...) travel with that fragment;
    boxes between ftyp and moov travel with the init. Fragments before an init are an error.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: list[bytes] = []  # top-level boxes waiting for their moov / moof
        self._moof: bytes | None = None  # a moof waiting for its mdat
        self._tracks: tuple[TrackInfo, ...] | None = None
        self._defaults: dict[int, _Defaults] = {}
        self._pending_size = 0

    def feed(self, data: bytes) -> list[InitSegment | Fragment]:
        """Take the next bytes of the stream; return what they completed, in order."""
        self._buffer += data
        out: list[InitSegment | Fragment] = []
        offset = 0
        try:
            while True:
                header = _header(self._buffer, offset, len(self._buffer))
                if header is None:
                    break
                kind, _, size = header
                if size > MAX_BOX_SIZE:
                    raise IsobmffError(
                        f"box {kind!r} of {size} bytes is larger than {MAX_BOX_SIZE}"
                    )
                if offset + size > len(self._buffer):
                    break
                box = bytes(self._buffer[offset : offset + size])
                offset += size
                item = self._box(kind, box)
                if item is not None:
                    out.append(item)
        except IsobmffError:
            raise
        except (ValueError, IndexError, OverflowError, StopIteration, struct.error) as exc:
            raise IsobmffError(f"malformed box: {exc}") from exc
        finally:
            del self._buffer[:offset]
        return out

    def _box(self, kind: str, box: bytes) -> InitSegment | Fragment | None:
        if kind == "moov":
            header = _header(box, 0, len(box))
            assert header is not None
            tracks, defaults = _parse_init(box, (header[1], len(box)))
            self._tracks, self._defaults = tracks, defaults
            for track in tracks:
                self._defaults.setdefault(track.track_id, _Defaults(0, 0))
            data = b"".join([*self._pending, box])
            self._clear_pending()
            self._moof = None
            return InitSegment(data, tracks)
        if kind == "moof":
            if self._tracks is None:
                raise IsobmffError("a fragment arrived before the init segment (ftyp + moov)")
            if self._moof is not None:
                raise IsobmffError("moof without mdat")
            self._moof = box
            return None
        if kind == "mdat":
            if self._moof is None:
                raise IsobmffError("mdat without a moof before it")
            moof, self._moof = self._moof, None
            fragment = self._fragment(moof, box)
            self._clear_pending()
            return fragment
        if self._moof is not None:
            raise IsobmffError(f"box {kind!r} between moof and mdat")
        self._pending.append(box)
        self._pending_size += len(box)
        if self._pending_size > MAX_BOX_SIZE:
            raise IsobmffError("too many bytes of boxes before a moov or moof")
        return None

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_size = 0

    def _fragment(self, moof: bytes, mdat: bytes) -> Fragment:
        assert self._tracks is not None
        header = _header(moof, 0, len(moof))
        assert header is not None
        sequence, runs = _parse_moof(moof, header[1], len(moof), self._defaults)
        timescales = {track.track_id: track.timescale for track in self._tracks}
        video = next((t for t in self._tracks if t.kind == "video"), None)
        if video is not None and video.track_id in runs:
            lead = video.track_id
            independent = _is_sync(runs[lead].first_flags)
        else:
            lead = next(iter(runs))
            independent = video is None
        decode_time = runs[lead].decode_time / timescales[lead]
        duration = max(run.duration / timescales[tid] for tid, run in runs.items())
        data = b"".join([*self._pending, moof, mdat])
        return Fragment(data, sequence, independent, decode_time, duration)


# Samples --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a fragment: its track, timing (track timescale) and bytes."""

    track_id: int
    decode_time: int
    duration: int
    composition_offset: int
    sync: bool
    data: bytes


def _top_box(data: bytes, kind: str) -> tuple[int, int, int] | None:
    """(box start, payload start, end) of the first top-level box of `kind`."""
    offset = 0
    while True:
        header = _header(data, offset, len(data))
        if header is None:
            return None
        name, header_size, size = header
        if name == kind:
            return offset, offset + header_size, offset + size
        if size <= 0:
            return None
        offset += size


@functools.lru_cache(maxsize=32)
def _sample_defaults(init: InitSegment) -> dict[int, tuple[int, int, int]]:
    """trex defaults per track: (duration, size, flags); read once per init, not per fragment."""
    data = init.data
    moov = _top_box(data, "moov")
    if moov is None:
        raise IsobmffError("init segment without moov")
    result: dict[int, tuple[int, int, int]] = {}
    for kind, start, end in _children(data, moov[1], moov[2]):
        if kind == "mvex":
            for inner, s, e in _children(data, start, end):
                if inner == "trex":
                    result[_u32(data, s + 4, e)] = (
                        _u32(data, s + 12, e), _u32(data, s + 16, e), _u32(data, s + 20, e)
                    )
    return result


def fragment_samples(init: InitSegment, fragment: Fragment) -> Iterator[Sample]:
    """The samples of `fragment` (moof trun tables + mdat bytes), in file order per track run."""
    data = fragment.data
    moof = _top_box(data, "moof")
    if moof is None:
        raise IsobmffError("fragment without moof")
    moof_start = moof[0]
    defaults = _sample_defaults(init)
    for kind, start, end in _children(data, moof[1], moof[2]):
        if kind != "traf":
            continue
        tfhd = _child(data, start, end, "tfhd")
        if tfhd is None:
            raise IsobmffError("traf without tfhd")
        s, e = tfhd
        flags = _u32(data, s, e) & 0xFFFFFF
        track_id = _u32(data, s + 4, e)
        duration_default, size_default, flags_default = defaults.get(track_id, (0, 0, 0))
        base = moof_start  # default-base-is-moof, and the first traf's default anyway
        q = s + 8
        if flags & 0x01:
            base = _u64(data, q, e)  # explicit base-data-offset, from the fragment's start
            q += 8
        if flags & 0x02:
            q += 4
        if flags & 0x08:
            duration_default = _u32(data, q, e)
            q += 4
        if flags & 0x10:
            size_default = _u32(data, q, e)
            q += 4
        if flags & 0x20:
            flags_default = _u32(data, q, e)
        decode_time = 0
        for inner, s, e in _children(data, start, end):
            if inner == "tfdt":
                version = _u8(data, s, e)
                decode_time = _u64(data, s + 4, e) if version == 1 else _u32(data, s + 4, e)
        position = base
        for inner, s, e in _children(data, start, end):
            if inner != "trun":
                continue
            version = _u8(data, s, e)
            run_flags = _u32(data, s, e) & 0xFFFFFF
            count = _u32(data, s + 4, e)
            q = s + 8
            if run_flags & 0x01:
                offset = _u32(data, q, e)
                if offset & 0x8000_0000:
                    offset -= 1 << 32
                position = base + offset
                q += 4
            first_flags: int | None = None
            if run_flags & 0x04:
                first_flags = _u32(data, q, e)
                q += 4
            for i in range(count):
                duration, size, sample_flags, cts = duration_default, size_default, None, 0
                if run_flags & 0x100:
                    duration = _u32(data, q, e)
                    q += 4
                if run_flags & 0x200:
                    size = _u32(data, q, e)
                    q += 4
                if run_flags & 0x400:
                    sample_flags = _u32(data, q, e)
                    q += 4
                if run_flags & 0x800:
                    cts = _u32(data, q, e)
                    if version == 1 and cts & 0x8000_0000:
                        cts -= 1 << 32
                    q += 4
                if sample_flags is None:
                    sample_flags = first_flags if i == 0 and first_flags is not None else (
                        flags_default
                    )
                if position < 0 or position + size > len(data):
                    raise IsobmffError("sample data lies outside the fragment")
                yield Sample(track_id, decode_time, duration, cts, _is_sync(sample_flags),
                             data[position : position + size])
                position += size
                decode_time += duration
