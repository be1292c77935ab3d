"""Progressive MP4 from CMAF fragments: one `moov` first, then the samples (recording).

A rendition's init segment (ftyp + moov with mvex) and its ordered fragments (moof +
mdat, several per stored segment) become a plain, non-fragmented MP4 without
re-encoding: sample tables (stts, ctts, stss, stsz, stsc, stco/co64) and an edit list
are computed from the fragment headers alone, and the `mdat` payload is the fragments'
sample bytes copied in order. `plan_progressive` reads the fragments once (they need not
all be held at once) and returns a `ProgressiveMp4`: its total size, its header
(ftyp + moov + mdat header) and, for any byte range, which pieces of which input
fragments make it up. A server answers a `Range` request by loading only those.

A tfdt jump of more than `DISCONTINUITY` seconds (a publisher that came back, an
encoder restart) starts a new section that plays straight after the previous one; the
tracks stay aligned with each other. Sans-IO and pure; only `IsobmffError` escapes.
"""

from __future__ import annotations

import bisect
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from golive.formats.isobmff.boxes import (
    IsobmffError,
    box_header,
    child,
    children,
    top_box,
    u8,
    u32,
    u64,
)
from golive.formats.isobmff.init import TrackDefaults, TrackInfo, parse_moov
from golive.formats.isobmff.samples import TrackFragment, is_sync, read_traf

DISCONTINUITY = 0.5
"""Seconds a track's tfdt may differ from where its previous fragment ended before the
difference counts as a discontinuity rather than jitter to absorb."""

MAX_SAMPLES = 20_000_000
"""Samples accepted across all tracks: about 40 hours of 60 fps video with 48 kHz AAC."""

_U32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes of the output file that are a copy of `length` bytes of input fragment
    `fragment` from `offset`."""

    fragment: int
    offset: int
    length: int


@dataclass(slots=True)
class _Track:
    info: TrackInfo
    durations: array[int] = field(default_factory=lambda: array("Q"))
    sizes: array[int] = field(default_factory=lambda: array("I"))
    offsets: array[int] = field(default_factory=lambda: array("q"))  # composition offsets
    sync: array[int] = field(default_factory=lambda: array("I"))  # 1-based sample numbers
    chunk_samples: array[int] = field(default_factory=lambda: array("I"))
    chunk_positions: array[int] = field(default_factory=lambda: array("Q"))  # in mdat payload
    end: int = 0  # decode time where the next sample goes, track timescale, from 0
    shift: int | None = None  # output decode time = tfdt + shift, within a section
    section: int = -1
    start: float = 0.0  # the movie time (s) of the track's decode time 0

    def place(self, tfdt: int) -> int:
        """Where a fragment starting at `tfdt` goes on this track's timeline."""
        assert self.shift is not None
        return tfdt + self.shift


@dataclass(frozen=True, slots=True)
class ProgressiveMp4:
    """A planned progressive MP4: `header` bytes, then the mdat payload made of `spans`."""

    header: bytes  # ftyp + moov + mdat box header
    spans: tuple[Span, ...]
    span_starts: tuple[int, ...]  # output offset of each span
    size: int
    duration: float  # seconds

    def pieces(self, start: int, end: int) -> Iterator[bytes | Span]:
        """What makes up output bytes [start, end): header bytes, then fragment spans."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return
        if start < len(self.header):
            yield self.header[start : min(end, len(self.header))]
            start = len(self.header)
        index = max(0, bisect.bisect_right(self.span_starts, start) - 1)
        while start < end and index < len(self.spans):
            span, first = self.spans[index], self.span_starts[index]
            skip = start - first
            take = min(span.length - skip, end - start)
            yield Span(span.fragment, span.offset + skip, take)
            start += take
            index += 1

    def read(self, start: int, end: int, fragments: Sequence[bytes]) -> bytes:
        """Output bytes [start, end), copied from `fragments` (the ones planned from)."""
        out = bytearray()
        for piece in self.pieces(start, end):
            if isinstance(piece, Span):
                data = fragments[piece.fragment]
                if piece.offset + piece.length > len(data):
                    raise IsobmffError(f"fragment {piece.fragment} is shorter than planned")
                out += data[piece.offset : piece.offset + piece.length]
            else:
                out += piece
        return bytes(out)


def plan_progressive(init: bytes, fragments: Iterable[bytes]) -> ProgressiveMp4:
    """Plan the progressive MP4 of `init` (ftyp + moov) and `fragments` (each one or
    more [styp] moof mdat, in decode order). Only IsobmffError escapes."""
    try:
        return _Planner(init).plan(fragments)
    except IsobmffError:
        raise
    except (ValueError, IndexError, OverflowError, struct.error) as exc:
        raise IsobmffError(f"malformed fragment: {exc}") from exc


class _Planner:
    def __init__(self, init: bytes) -> None:
        moov = top_box(init, "moov")
        if moov is None:
            raise IsobmffError("init segment without moov")
        self._init = init
        self._moov = moov
        tracks, defaults = parse_moov(init, moov[1], moov[2])
        self._defaults: dict[int, TrackDefaults] = defaults
        self._tracks = {info.track_id: _Track(info) for info in tracks}
        self._spans: list[Span] = []
        self._payload = 0  # bytes of mdat payload so far
        self._samples = 0
        self._section = -1
        self._section_origin = 0.0  # source time (s) of the current section's start
        self._section_start = 0.0  # movie time (s) where the current section starts

    def plan(self, fragments: Iterable[bytes]) -> ProgressiveMp4:
        for index, data in enumerate(fragments):
            self._fragment(index, data)
        return self._finish()

    # Reading -----------------------------------------------------------------------

    def _fragment(self, index: int, data: bytes) -> None:
        offset = 0
        moofs = 0
        while offset < len(data):
            header = box_header(data, offset, len(data))
            if header is None:
                raise IsobmffError(f"fragment {index}: box header truncated")
            kind, header_size, size = header
            if offset + size > len(data):
                raise IsobmffError(f"fragment {index}: box {kind!r} overruns the fragment")
            if kind == "moof":
                self._moof(index, data, offset, offset + header_size, offset + size)
                moofs += 1
            offset += size
        if not moofs:
            raise IsobmffError(f"fragment {index} has no moof")

    def _moof(self, index: int, data: bytes, moof: int, start: int, end: int) -> None:
        trafs = [read_traf(data, s, e, self._defaults)
                 for kind, s, e in children(data, start, end) if kind == "traf"]
        if not trafs:
            raise IsobmffError(f"fragment {index}: moof without traf")
        for traf in trafs:
            if traf.track_id not in self._tracks:
                raise IsobmffError(
                    f"fragment {index} names track {traf.track_id}, which the init does not declare"
                )
        if self._discontinuous(trafs):
            self._section += 1
            self._section_origin = min(
                t.decode_time / self._tracks[t.track_id].info.timescale for t in trafs)
            self._section_start = max(
                (track.start + track.end / track.info.timescale
                 for track in self._tracks.values() if track.shift is not None), default=0.0)
        for traf in trafs:
            track = self._tracks[traf.track_id]
            self._align(track, traf.decode_time)
            base = moof if traf.base_data_offset is None else traf.base_data_offset
            position = base
            for run in traf.runs:
                if run.data_offset is not None:
                    position = base + run.data_offset
                self._samples += run.count
                if self._samples > MAX_SAMPLES:
                    raise IsobmffError(f"more than {MAX_SAMPLES} samples")
                run_start = position
                for sample in run.samples(data, traf.defaults):
                    track.durations.append(sample.duration)
                    track.sizes.append(sample.size)
                    track.offsets.append(sample.composition_offset)
                    if is_sync(sample.flags):
                        track.sync.append(len(track.sizes))
                    track.end += sample.duration
                    position += sample.size
                if position < 0 or run_start < 0 or position > len(data):
                    raise IsobmffError(f"fragment {index}: sample data lies outside it")
                if run.count:
                    self._chunk(track, index, run_start, position - run_start, run.count)

    def _discontinuous(self, trafs: Sequence[TrackFragment]) -> bool:
        """Whether this moof starts a new section: the first, or a tfdt jump on a track
        already placed in the current section."""
        if self._section < 0:
            return True
        for traf in trafs:
            track = self._tracks[traf.track_id]
            if track.shift is None or track.section != self._section:
                continue
            jump = track.place(traf.decode_time) - track.end
            if abs(jump) > DISCONTINUITY * track.info.timescale:
                return True
        return False

    def _align(self, track: _Track, tfdt: int) -> None:
        """Set the track's shift so this traf continues it; absorb small gaps and overlaps."""
        timescale = track.info.timescale
        if track.shift is None:  # the track's first fragment
            track.start = tfdt / timescale - self._section_origin + self._section_start
            track.shift = -tfdt
            track.section = self._section
            return
        if track.section != self._section:  # first fragment of this track in a new section
            movie = tfdt / timescale - self._section_origin + self._section_start
            target = round((movie - track.start) * timescale)
            track.section = self._section
        else:
            target = track.place(tfdt)
        gap = target - track.end
        if track.durations and gap > 0:
            track.durations[-1] += gap
            track.end += gap
        elif track.durations and gap < 0:
            cut = min(-gap, track.durations[-1] - 1)
            if cut > 0:
                track.durations[-1] -= cut
                track.end -= cut
        track.shift = track.end - tfdt

    def _chunk(self, track: _Track, index: int, offset: int, length: int, count: int) -> None:
        track.chunk_samples.append(count)
        track.chunk_positions.append(self._payload)
        last = self._spans[-1] if self._spans else None
        if last is not None and last.fragment == index and last.offset + last.length == offset:
            self._spans[-1] = Span(index, last.offset, last.length + length)
        else:
            self._spans.append(Span(index, offset, length))
        self._payload += length

    # Writing -----------------------------------------------------------------------

    def _finish(self) -> ProgressiveMp4:
        tracks = [t for t in self._tracks.values() if t.sizes]
        if not tracks:
            raise IsobmffError("no samples to write")
        movie_start = min(t.start for t in tracks)
        large = self._payload + 8 > _U32
        mdat_header_size = 16 if large else 8
        ftyp = _ftyp(tracks)
        # The moov's size depends on whether offsets need co64, not on their values:
        # write it once with a zero base to learn its size, then again with the real base.
        moov = self._moov_box(tracks, movie_start, 0, wide=False)
        base = len(ftyp) + len(moov) + mdat_header_size
        wide = any(t.chunk_positions[-1] + base > _U32 for t in tracks)
        if wide:  # co64 makes the moov larger, which only moves the offsets further out
            base = len(ftyp) + len(self._moov_box(tracks, movie_start, 0, wide=True)) \
                + mdat_header_size
        moov = self._moov_box(tracks, movie_start, base, wide=wide)
        if len(ftyp) + len(moov) + mdat_header_size != base:
            raise IsobmffError("moov size changed between passes")
        if large:
            mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + self._payload)
        else:
            mdat = struct.pack(">I4s", 8 + self._payload, b"mdat")
        header = ftyp + moov + mdat
        starts: list[int] = []
        position = len(header)
        for span in self._spans:
            starts.append(position)
            position += span.length
        duration = max(t.start - movie_start + t.end / t.info.timescale for t in tracks)
        return ProgressiveMp4(header, tuple(self._spans), tuple(starts), position, duration)

    def _moov_box(self, tracks: list[_Track], movie_start: float, base: int, *,
                  wide: bool) -> bytes:
        init, (_, start, end) = self._init, self._moov
        mvhd = child(init, start, end, "mvhd")
        if mvhd is None:
            raise IsobmffError("moov without mvhd")
        version = u8(init, *mvhd)
        movie_scale = u32(init, mvhd[0] + (20 if version == 1 else 12), mvhd[1]) or 1000
        movie_duration = max(round((t.start - movie_start) * movie_scale)
                             + round(_visible(t) / t.info.timescale * movie_scale)
                             for t in tracks)
        body = [_timed_full_box(init, mvhd, "mvhd", movie_scale, movie_duration)]
        by_id = {t.info.track_id: t for t in tracks}
        for kind, s, e in children(init, start, end):
            if kind == "trak":
                track = by_id.get(_trak_id(init, s, e))
                if track is not None:
                    body.append(self._trak(track, s, e, movie_scale,
                                           track.start - movie_start, base, wide))
            elif kind not in ("mvhd", "mvex"):
                body.append(_box(kind, init[s:e]))
        return _box("moov", b"".join(body))

    def _trak(self, track: _Track, start: int, end: int, movie_scale: int, delay: float,
              base: int, wide: bool) -> bytes:
        init = self._init
        timescale = track.info.timescale
        media_time = _media_time(track)
        visible = _visible(track)
        body: list[bytes] = []
        for kind, s, e in children(init, start, end):
            if kind == "tkhd":
                body.append(_tkhd(init, s, e, round(visible / timescale * movie_scale)
                                  + round(delay * movie_scale)))
                body.append(_edts(delay, media_time, visible, timescale, movie_scale))
            elif kind == "mdia":
                body.append(self._mdia(track, s, e, base, wide))
            elif kind != "edts":
                body.append(_box(kind, init[s:e]))
        return _box("trak", b"".join(body))

    def _mdia(self, track: _Track, start: int, end: int, base: int, wide: bool) -> bytes:
        init = self._init
        body: list[bytes] = []
        for kind, s, e in children(init, start, end):
            if kind == "mdhd":
                body.append(_timed_full_box(init, (s, e), "mdhd", track.info.timescale,
                                            track.end))
            elif kind == "minf":
                inner: list[bytes] = []
                for k, s2, e2 in children(init, s, e):
                    if k == "stbl":
                        inner.append(_stbl(init, s2, e2, track, base, wide))
                    else:
                        inner.append(_box(k, init[s2:e2]))
                body.append(_box("minf", b"".join(inner)))
            else:
                body.append(_box(kind, init[s:e]))
        return _box("mdia", b"".join(body))


# Boxes ---------------------------------------------------------------------------------


def _box(kind: str, payload: bytes) -> bytes:
    size = 8 + len(payload)
    if size > _U32:
        return struct.pack(">I4sQ", 1, kind.encode("latin-1"), size + 8) + payload
    return struct.pack(">I4s", size, kind.encode("latin-1")) + payload


def _full(kind: str, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _ftyp(tracks: list[_Track]) -> bytes:
    brands = [b"isom", b"iso2", b"mp41"]
    if any(t.info.codec.startswith(("avc1", "avc3")) for t in tracks):
        brands.append(b"avc1")
    return _box("ftyp", b"isom" + struct.pack(">I", 0x200) + b"".join(brands))


def _trak_id(data: bytes, start: int, end: int) -> int:
    tkhd = child(data, start, end, "tkhd")
    if tkhd is None:
        raise IsobmffError("trak without tkhd")
    version = u8(data, *tkhd)
    return u32(data, tkhd[0] + (20 if version == 1 else 12), tkhd[1])


def _timed_full_box(data: bytes, where: tuple[int, int], kind: str, timescale: int,
                    duration: int) -> bytes:
    """mvhd or mdhd rewritten as version 1 with `timescale` and `duration`; the rest kept."""
    s, e = where
    version = u8(data, s, e)
    flags = u32(data, s, e) & 0xFFFFFF
    if version == 1:
        created, modified = u64(data, s + 4, e), u64(data, s + 12, e)
        rest = data[s + 32 : e]
    else:
        created, modified = u32(data, s + 4, e), u32(data, s + 8, e)
        rest = data[s + 20 : e]
    if not rest:
        raise IsobmffError(f"{kind} truncated")
    return _full(kind, 1, flags, struct.pack(">QQIQ", created, modified, timescale, duration)
                 + rest)


def _tkhd(data: bytes, s: int, e: int, duration: int) -> bytes:
    version = u8(data, s, e)
    flags = u32(data, s, e) & 0xFFFFFF
    if version == 1:
        created, modified, track_id = u64(data, s + 4, e), u64(data, s + 12, e), u32(data, s + 20, e)
        rest = data[s + 36 : e]
    else:
        created, modified, track_id = u32(data, s + 4, e), u32(data, s + 8, e), u32(data, s + 12, e)
        rest = data[s + 24 : e]
    if len(rest) < 60:
        raise IsobmffError("tkhd truncated")
    return _full("tkhd", 1, flags | 0x3,
                 struct.pack(">QQIIQ", created, modified, track_id, 0, duration) + rest)


def _edts(delay: float, media_time: int, visible: int, timescale: int, movie_scale: int) -> bytes:
    entries: list[bytes] = []
    empty = round(delay * movie_scale)
    if empty > 0:
        entries.append(struct.pack(">QqHH", empty, -1, 1, 0))
    entries.append(struct.pack(">QqHH", round(visible / timescale * movie_scale), media_time, 1, 0))
    elst = _full("elst", 1, 0, struct.pack(">I", len(entries)) + b"".join(entries))
    return _box("edts", elst)


def _media_time(track: _Track) -> int:
    """The track's earliest presentation time: where its edit starts showing media."""
    time, earliest = 0, None
    for duration, offset in zip(track.durations, track.offsets, strict=True):
        if earliest is None or time + offset < earliest:
            earliest = time + offset
        time += duration
    return max(0, earliest or 0)


def _visible(track: _Track) -> int:
    """How long the track presents, in its timescale, from its media time on."""
    return max(0, track.end - _media_time(track))


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """(count, value) run-length encoding."""
    out: list[tuple[int, int]] = []
    for value in values:
        if out and out[-1][1] == value:
            out[-1] = (out[-1][0] + 1, value)
        else:
            out.append((1, value))
    return out


def _stbl(data: bytes, start: int, end: int, track: _Track, base: int, wide: bool) -> bytes:
    stsd = child(data, start, end, "stsd")
    if stsd is None:
        raise IsobmffError(f"track {track.info.track_id} without stsd")
    body = [_box("stsd", data[stsd[0] : stsd[1]])]
    stts = _runs(track.durations)
    if any(d > _U32 for _, d in stts):
        raise IsobmffError("a sample lasts longer than stts can say")
    body.append(_full("stts", 0, 0, struct.pack(">I", len(stts))
                      + b"".join(struct.pack(">II", c, d) for c, d in stts)))
    if any(track.offsets):
        ctts = _runs(track.offsets)
        signed = any(o < 0 for _, o in ctts)
        row = ">Ii" if signed else ">II"
        if any(not -(1 << 31) <= o <= _U32 for _, o in ctts):
            raise IsobmffError("a composition offset out of ctts range")
        body.append(_full("ctts", 1 if signed else 0, 0, struct.pack(">I", len(ctts))
                          + b"".join(struct.pack(row, c, o) for c, o in ctts)))
    if len(track.sync) != len(track.sizes):
        body.append(_full("stss", 0, 0, struct.pack(">I", len(track.sync))
                          + _big_endian(track.sync)))
    sizes = track.sizes
    if len(set(sizes)) == 1:
        body.append(_full("stsz", 0, 0, struct.pack(">II", sizes[0], len(sizes))))
    else:
        body.append(_full("stsz", 0, 0, struct.pack(">II", 0, len(sizes))
                          + _big_endian(sizes)))
    stsc: list[tuple[int, int]] = []
    for number, count in enumerate(track.chunk_samples, start=1):
        if not stsc or stsc[-1][1] != count:
            stsc.append((number, count))
    body.append(_full("stsc", 0, 0, struct.pack(">I", len(stsc))
                      + b"".join(struct.pack(">III", first, count, 1) for first, count in stsc)))
    positions = array("Q", (p + base for p in track.chunk_positions))
    if wide:
        body.append(_full("co64", 0, 0, struct.pack(">I", len(positions))
                          + _big_endian(positions)))
    else:
        body.append(_full("stco", 0, 0, struct.pack(">I", len(positions))
                          + _big_endian(array("I", positions))))
    return _box("stbl", b"".join(body))


def _big_endian(values: array[int]) -> bytes:
    """The array's values as big-endian integers of its item size."""
    out = array(values.typecode, values)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()
