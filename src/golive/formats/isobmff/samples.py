"""ISO-BMFF track fragments: the one traf/tfhd/trun reader, and a fragment's samples (packaging).

ISO/IEC 14496-12 8.8. `read_traf` reads a track fragment's header, decode time and
run headers; a run's sample table is read on demand by `TrackRun.samples`. The
fragment reader takes timing and sync from it, WHEP takes each sample's bytes
(`fragment_samples`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from golive.formats.isobmff.boxes import IsobmffError, child, children, top_box, u8, u32, u64
from golive.formats.isobmff.init import NO_DEFAULTS, InitSegment, TrackDefaults, track_defaults

if TYPE_CHECKING:  # fragments.py reads track fragments with this module
    from golive.formats.isobmff.fragments import Fragment

_SAMPLE_NON_SYNC = 0x0001_0000  # sample_is_non_sync_sample in the sample flags

# tr_flags (8.8.8.1)
_DATA_OFFSET = 0x001
_FIRST_SAMPLE_FLAGS = 0x004
_SAMPLE_DURATION = 0x100
_SAMPLE_SIZE = 0x200
_SAMPLE_FLAGS = 0x400
_SAMPLE_CTS = 0x800


def is_sync(flags: int | None) -> bool:
    """Whether sample flags mark a sync sample (a clean place to start decoding)."""
    # An I-frame that only sample_depends_on marks independent but that is flagged non-sync is
    # an open-GOP picture: not a clean start for a segment, so only the sync flag counts.
    return flags is not None and not flags & _SAMPLE_NON_SYNC


@dataclass(frozen=True, slots=True)
class RunSample:
    """One row of a trun sample table, defaults filled in."""

    duration: int
    size: int
    flags: int
    composition_offset: int


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One trun: its header, and where in the fragment its sample table lies."""

    version: int
    flags: int
    count: int
    data_offset: int | None  # signed, from the traf's base data offset
    first_sample_flags: int | None
    table: int  # offset of the sample table in the fragment's bytes
    row_size: int  # bytes per sample in the table (0: every field is a default)

    def samples(self, data: bytes, defaults: TrackDefaults) -> Iterator[RunSample]:
        """The run's samples from its table in `data` (the bytes it was read from)."""
        q = self.table
        end = self.table + self.row_size * self.count
        for i in range(self.count):
            duration, size, flags, cts = defaults.duration, defaults.size, None, 0
            if self.flags & _SAMPLE_DURATION:
                duration = u32(data, q, end)
                q += 4
            if self.flags & _SAMPLE_SIZE:
                size = u32(data, q, end)
                q += 4
            if self.flags & _SAMPLE_FLAGS:
                flags = u32(data, q, end)
                q += 4
            if self.flags & _SAMPLE_CTS:
                cts = u32(data, q, end)
                if self.version == 1 and cts & 0x8000_0000:
                    cts -= 1 << 32
                q += 4
            if i == 0 and self.first_sample_flags is not None:
                flags = self.first_sample_flags  # overrides the first row's flags (8.8.8.1)
            yield RunSample(duration, size, defaults.flags if flags is None else flags, cts)

    def duration(self, data: bytes, defaults: TrackDefaults) -> int:
        """The sum of the run's sample durations, without reading a table it does not need."""
        if not self.flags & _SAMPLE_DURATION:
            return defaults.duration * self.count
        return sum(sample.duration for sample in self.samples(data, defaults))


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """One traf: its track, decode time, base data offset, defaults and runs."""

    track_id: int
    decode_time: int  # tfdt baseMediaDecodeTime; 0 without a tfdt
    base_data_offset: int | None  # explicit in the tfhd, from the fragment's start
    defaults: TrackDefaults  # the trex defaults as the tfhd overrides them
    runs: tuple[TrackRun, ...]

    def duration(self, data: bytes) -> int:
        return sum(run.duration(data, self.defaults) for run in self.runs)

    def first_sample_flags(self, data: bytes) -> int | None:
        """The flags of the fragment's first sample of this track; None if it has none."""
        for run in self.runs:
            if run.count:
                return next(run.samples(data, self.defaults)).flags
        return None


def read_traf(data: bytes, start: int, end: int,
              defaults: Mapping[int, TrackDefaults]) -> TrackFragment:
    """Read the traf payload data[start:end]; `defaults` are the init's trex defaults by track."""
    tfhd = child(data, start, end, "tfhd")
    if tfhd is None:
        raise IsobmffError("traf without tfhd")
    s, e = tfhd
    flags = u32(data, s, e) & 0xFFFFFF
    track_id = u32(data, s + 4, e)
    trex = defaults.get(track_id, NO_DEFAULTS)
    duration, size, sample_flags = trex.duration, trex.size, trex.flags
    base: int | None = None
    q = s + 8
    if flags & 0x01:
        base = u64(data, q, e)
        q += 8
    if flags & 0x02:
        q += 4  # sample_description_index
    if flags & 0x08:
        duration = u32(data, q, e)
        q += 4
    if flags & 0x10:
        size = u32(data, q, e)
        q += 4
    if flags & 0x20:
        sample_flags = u32(data, q, e)
    decode_time = 0
    runs: list[TrackRun] = []
    for kind, s, e in children(data, start, end):
        if kind == "tfdt":
            version = u8(data, s, e)
            decode_time = u64(data, s + 4, e) if version == 1 else u32(data, s + 4, e)
        elif kind == "trun":
            runs.append(_read_trun(data, s, e))
    return TrackFragment(track_id, decode_time, base, TrackDefaults(duration, size, sample_flags),
                         tuple(runs))


def _read_trun(data: bytes, start: int, end: int) -> TrackRun:
    version = u8(data, start, end)
    flags = u32(data, start, end) & 0xFFFFFF
    count = u32(data, start + 4, end)
    q = start + 8
    data_offset: int | None = None
    if flags & _DATA_OFFSET:
        data_offset = u32(data, q, end)
        if data_offset & 0x8000_0000:
            data_offset -= 1 << 32
        q += 4
    first: int | None = None
    if flags & _FIRST_SAMPLE_FLAGS:
        first = u32(data, q, end)
        q += 4
    row = 4 * sum(1 for bit in (_SAMPLE_DURATION, _SAMPLE_SIZE, _SAMPLE_FLAGS, _SAMPLE_CTS)
                  if flags & bit)
    if q + row * count > end:
        raise IsobmffError("trun sample table overruns its box")
    return TrackRun(version, flags, count, data_offset, first, q, row)


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


def fragment_samples(init: InitSegment, fragment: Fragment) -> Iterator[Sample]:
    """The samples of `fragment` (moof trun tables + mdat bytes), in file order per track run."""
    data = fragment.data
    moof = top_box(data, "moof")
    if moof is None:
        raise IsobmffError("fragment without moof")
    defaults = track_defaults(init)
    for kind, start, end in children(data, moof[1], moof[2]):
        if kind != "traf":
            continue
        traf = read_traf(data, start, end, defaults)
        # default-base-is-moof, and the first traf's default anyway
        base = moof[0] if traf.base_data_offset is None else traf.base_data_offset
        position = base
        decode_time = traf.decode_time
        for run in traf.runs:
            if run.data_offset is not None:
                position = base + run.data_offset
            for sample in run.samples(data, traf.defaults):
                if position < 0 or position + sample.size > len(data):
                    raise IsobmffError("sample data lies outside the fragment")
                yield Sample(traf.track_id, decode_time, sample.duration,
                             sample.composition_offset, is_sync(sample.flags),
                             data[position : position + sample.size])
                position += sample.size
                decode_time += sample.duration
