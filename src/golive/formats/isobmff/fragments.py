"""Splitting a fragmented MP4 byte stream into init segments and fragments (packaging).

Sans-IO: `FragmentReader.feed` takes bytes in any chunking and returns the init
segments (ftyp + moov) and fragments (moof + mdat) found in them, with the facts the
playlists need: timing and whether a fragment starts with a sync sample. The media
bytes themselves are passed through verbatim.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from golive.formats.isobmff.boxes import MAX_BOX_SIZE, IsobmffError, box_header, children, u32
from golive.formats.isobmff.init import InitSegment, TrackDefaults, TrackInfo, parse_moov
from golive.formats.isobmff.samples import is_sync, read_traf


@dataclass(frozen=True, slots=True)
class Fragment:
    """One movie fragment (any styp/prft/emsg/sidx before it + moof + mdat), verbatim."""

    data: bytes
    sequence_number: int
    independent: bool  # the video track's first sample is a sync sample (True without video)
    decode_time: float  # seconds: the video track's baseMediaDecodeTime, else the first track's
    duration: float  # seconds: the same track's sum of sample durations
    # The init declares video but this fragment carries none of it: audio a muxer let run
    # ahead of a late picture (see `PartJoiner`).
    leadless: bool = False


@dataclass(frozen=True, slots=True)
class _TrackTiming:
    decode_time: int
    duration: int
    first_flags: int | None


_NO_SAMPLES = _TrackTiming(0, 0, None)


def _moof_timing(data: bytes, start: int, end: int, defaults: dict[int, TrackDefaults],
                 tracks: tuple[TrackInfo, ...]) -> tuple[int, dict[int, _TrackTiming]]:
    """The moof's sequence number and, per track, its first decode time, summed sample
    durations and first sample's flags (trafs of one track add up)."""
    known = {track.track_id for track in tracks}
    sequence = -1
    timings: dict[int, _TrackTiming] = {}
    for kind, s, e in children(data, start, end):
        if kind == "mfhd":
            sequence = u32(data, s + 4, e)
        elif kind == "traf":
            traf = read_traf(data, s, e, defaults)
            if traf.track_id not in known:
                raise IsobmffError(
                    f"fragment names track {traf.track_id}, which the init does not declare"
                )
            timing = _TrackTiming(traf.decode_time, traf.duration(data),
                                  traf.first_sample_flags(data))
            previous = timings.get(traf.track_id)
            if previous is not None:
                timing = _TrackTiming(previous.decode_time, previous.duration + timing.duration,
                                      previous.first_flags)
            timings[traf.track_id] = timing
    if sequence < 0:
        raise IsobmffError("moof without mfhd")
    if not timings:
        raise IsobmffError("moof without traf")
    return sequence, timings


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
        self._defaults: dict[int, TrackDefaults] = {}
        self._pending_size = 0

    def feed(self, data: bytes) -> list[InitSegment | Fragment]:
        """Take the next bytes of the stream; return what they completed, in order."""
        self._buffer += data
        out: list[InitSegment | Fragment] = []
        offset = 0
        try:
            while True:
                header = box_header(self._buffer, offset, len(self._buffer))
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
            header = box_header(box, 0, len(box))
            assert header is not None
            tracks, defaults = parse_moov(box, header[1], len(box))
            self._tracks, self._defaults = tracks, defaults
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
        header = box_header(moof, 0, len(moof))
        assert header is not None
        sequence, timings = _moof_timing(moof, header[1], len(moof), self._defaults,
                                         self._tracks)
        timescales = {track.track_id: track.timescale for track in self._tracks}
        video = next((t for t in self._tracks if t.kind == "video"), None)
        # Timed by the picture: the playlists list video parts, and audio a little ahead
        # of (or behind) the picture in one fragment must not stretch (or shrink) them.
        leadless = video is not None and not timings.get(video.track_id, _NO_SAMPLES).duration
        if video is not None and not leadless:
            lead = video.track_id
            independent = is_sync(timings[lead].first_flags)
        else:
            lead = next(iter(timings))
            independent = video is None
        decode_time = timings[lead].decode_time / timescales[lead]
        duration = timings[lead].duration / timescales[lead]
        data = b"".join([*self._pending, moof, mdat])
        return Fragment(data, sequence, independent, decode_time, duration, leadless)


class PartJoiner:
    """Makes LL-HLS parts of a rendition's fragments: each is timed by its picture.

    A muxer writes audio on its own when the picture is late by more than it waits to
    interleave them (ffmpeg's -max_interleave_delta): an encoder starved of CPU, or a
    publisher that sends its sound well ahead of its picture. Such a fragment, listed
    as a part, would carry the audio's time and duration into a playlist of video
    parts (a part longer than the part target, a segment far longer than the target
    duration). It travels instead with the next fragment that has video, in one part
    of two movie fragments, which every fMP4 reader takes.

    Held audio that ends before that fragment's picture begins (the sound of a rendition
    whose picture was gated off) goes out on its own first, as does the oldest held one
    past `max_held` or `max_bytes`, and all of it at `flush` (the end of the output).
    """

    def __init__(self, *, max_held: int = 64, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.max_held = max_held
        self.max_bytes = max_bytes
        self._held: list[Fragment] = []
        self._held_bytes = 0

    def push(self, fragment: Fragment) -> list[Fragment]:
        """Take the next fragment; return the parts it completes, in order."""
        out: list[Fragment] = []
        if fragment.leadless:
            self._held.append(fragment)
            self._held_bytes += len(fragment.data)
            while len(self._held) > self.max_held or self._held_bytes > self.max_bytes:
                out.append(self._release())
            return out
        while self._held and _ends_before(self._held[0], fragment.decode_time):
            out.append(self._release())
        if not self._held:
            out.append(fragment)
            return out
        data = b"".join([*(held.data for held in self._held), fragment.data])
        self._held.clear()
        self._held_bytes = 0
        out.append(Fragment(data, fragment.sequence_number, fragment.independent,
                            fragment.decode_time, fragment.duration))
        return out

    def flush(self) -> list[Fragment]:
        """The held fragments, on their own: nothing more is coming."""
        out = list(self._held)
        self._held.clear()
        self._held_bytes = 0
        return out

    def _release(self) -> Fragment:
        fragment = self._held.pop(0)
        self._held_bytes -= len(fragment.data)
        return fragment


def _ends_before(fragment: Fragment, at: float) -> bool:
    return fragment.decode_time + fragment.duration <= at + 1e-6
