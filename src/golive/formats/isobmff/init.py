"""ISO-BMFF init segments: the tracks a moov declares, their codec strings and trex defaults (packaging).

Reads what the playlists need from ftyp + moov: per track its id, kind, timescale,
RFC 6381 codec string and picture size, plus the movie-extends defaults fragments
fall back on. Codec strings come from `golive.formats.codecs`, the one place each
is computed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from golive.formats.codecs import (
    CodecError,
    av1_codec_string,
    avc_codec_string,
    avc_config_profile,
    hevc_codec_string,
    hevc_config_profile,
    parse_av1_config,
)
from golive.formats.isobmff.boxes import IsobmffError, child, children, top_box, u8, u16, u32


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
class TrackDefaults:
    """A track's trex defaults (ISO/IEC 14496-12 8.8.3), for samples a fragment leaves unsaid."""

    duration: int
    size: int
    flags: int


NO_DEFAULTS = TrackDefaults(0, 0, 0)


def parse_moov(data: bytes, start: int, end: int) -> tuple[tuple[TrackInfo, ...],
                                                           dict[int, TrackDefaults]]:
    """The tracks of the moov payload data[start:end], and the trex defaults of each."""
    tracks: list[TrackInfo] = []
    defaults: dict[int, TrackDefaults] = {}
    for kind, s, e in children(data, start, end):
        if kind == "trak":
            tracks.append(_parse_trak(data, s, e))
        elif kind == "mvex":
            defaults.update(_trex_defaults(data, s, e))
    if not tracks:
        raise IsobmffError("moov declares no tracks")
    for track in tracks:
        defaults.setdefault(track.track_id, NO_DEFAULTS)
    return tuple(tracks), defaults


def _trex_defaults(data: bytes, start: int, end: int) -> dict[int, TrackDefaults]:
    defaults: dict[int, TrackDefaults] = {}
    for inner, s, e in children(data, start, end):
        if inner == "trex":
            defaults[u32(data, s + 4, e)] = TrackDefaults(
                u32(data, s + 12, e), u32(data, s + 16, e), u32(data, s + 20, e)
            )
    return defaults


@functools.lru_cache(maxsize=32)
def track_defaults(init: InitSegment) -> dict[int, TrackDefaults]:
    """The trex defaults of an init's tracks; read once per init, not once per fragment."""
    moov = top_box(init.data, "moov")
    if moov is None:
        raise IsobmffError("init segment without moov")
    defaults: dict[int, TrackDefaults] = {}
    for kind, start, end in children(init.data, moov[1], moov[2]):
        if kind == "mvex":
            defaults.update(_trex_defaults(init.data, start, end))
    return defaults


def _sample_entry(data: bytes, mdia: tuple[int, int]) -> tuple[str, int, int] | None:
    """(type, payload start, end) of the first sample entry in mdia's stsd, if any."""
    minf = child(data, *mdia, "minf")
    stbl = child(data, *minf, "stbl") if minf is not None else None
    stsd = child(data, *stbl, "stsd") if stbl is not None else None
    if stsd is None or stsd[1] - stsd[0] <= 8:
        return None
    return next(children(data, stsd[0] + 8, stsd[1]), None)


def _handler(data: bytes, mdia: tuple[int, int]) -> str | None:
    """The handler_type of an mdia: vide, soun, ..."""
    hdlr = child(data, *mdia, "hdlr")
    return bytes(data[hdlr[0] + 8 : hdlr[0] + 12]).decode("latin-1") if hdlr else None


def _parse_trak(data: bytes, start: int, end: int) -> TrackInfo:
    tkhd = child(data, start, end, "tkhd")
    mdia = child(data, start, end, "mdia")
    if tkhd is None or mdia is None:
        raise IsobmffError("trak without tkhd or mdia")
    version = u8(data, tkhd[0], tkhd[1])
    track_id = u32(data, tkhd[0] + (20 if version == 1 else 12), tkhd[1])
    # tkhd ends with width and height as 16.16 fixed point
    tk_width = u32(data, tkhd[1] - 8, tkhd[1]) >> 16 if tkhd[1] - tkhd[0] >= 84 else 0
    tk_height = u32(data, tkhd[1] - 4, tkhd[1]) >> 16 if tkhd[1] - tkhd[0] >= 84 else 0
    mdhd = child(data, *mdia, "mdhd")
    handler = _handler(data, mdia)
    if mdhd is None or handler is None:
        raise IsobmffError(f"track {track_id} without mdhd or hdlr")
    version = u8(data, mdhd[0], mdhd[1])
    timescale = u32(data, mdhd[0] + (20 if version == 1 else 12), mdhd[1])
    if timescale == 0:
        raise IsobmffError(f"track {track_id} has timescale 0")
    kind = {"vide": "video", "soun": "audio"}.get(handler, "other")
    codec = ""
    width: int | None = None
    height: int | None = None
    entry = _sample_entry(data, mdia)
    if entry is not None:
        entry_kind, entry_start, entry_end = entry
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


# SampleEntry (8) + VisualSampleEntry fields (70) come before a visual entry's boxes.
_VISUAL_FIELDS = 78


def _visual_boxes(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    if end - start <= _VISUAL_FIELDS:
        return {}
    return {kind: (s, e) for kind, s, e in children(data, start + _VISUAL_FIELDS, end)}


def _visual_entry(data: bytes, fourcc: str, start: int, end: int) -> tuple[str, int, int]:
    width = u16(data, start + 24, end)
    height = u16(data, start + 26, end)
    boxes = _visual_boxes(data, start, end)
    try:
        return _visual_codec(data, fourcc, boxes), width, height
    except CodecError as exc:
        raise IsobmffError(f"{fourcc} sample entry: {exc}") from exc


def _visual_codec(data: bytes, fourcc: str, boxes: dict[str, tuple[int, int]]) -> str:
    if fourcc in ("avc1", "avc3") and "avcC" in boxes:
        s, e = boxes["avcC"]
        return avc_codec_string(*avc_config_profile(data[s:e]), fourcc=fourcc)
    if fourcc in ("hvc1", "hev1") and "hvcC" in boxes:
        s, e = boxes["hvcC"]
        return hevc_codec_string(hevc_config_profile(data[s:e]), fourcc=fourcc)
    if fourcc == "av01" and "av1C" in boxes:
        s, e = boxes["av1C"]
        return av1_codec_string(parse_av1_config(data[s:e]))
    return fourcc


_DECODER_CONFIGS = frozenset({"avcC", "hvcC", "av1C", "vpcC"})


def video_decoder_config(init: bytes) -> tuple[str, bytes] | None:
    """(box type, payload) of the first video track's decoder configuration box
    (avcC, hvcC, av1C, ...), or None if the init has no video track with one."""
    moov = top_box(init, "moov")
    if moov is None:
        return None
    for kind, start, end in children(init, moov[1], moov[2]):
        mdia = child(init, start, end, "mdia") if kind == "trak" else None
        if mdia is None or _handler(init, mdia) != "vide":
            continue
        entry = _sample_entry(init, mdia)
        if entry is None:
            continue
        boxes = _visual_boxes(init, entry[1], entry[2])
        return next(((name, init[s:e]) for name, (s, e) in boxes.items()
                     if name in _DECODER_CONFIGS), None)
    return None


def _audio_entry(data: bytes, fourcc: str, start: int, end: int) -> str:
    if fourcc == "mp4a":
        # SampleEntry (8) + AudioSampleEntry fields (20); QuickTime sound v1/v2 add more
        version = u16(data, start + 8, end)
        offset = start + 28 + {1: 16, 2: 36}.get(version, 0)
        esds = child(data, offset, end, "esds") if end > offset else None
        return _mp4a_codec(data, *esds) if esds is not None else "mp4a.40.2"
    if fourcc == "Opus":
        return "Opus"
    return fourcc


def _descriptor(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (ISO/IEC 14496-1)."""
    tag = u8(data, offset, end)
    offset += 1
    length = 0
    for _ in range(4):
        byte = u8(data, offset, end)
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
    flags = u8(data, s + 2, e)
    s += 3
    if flags & 0x80:
        s += 2
    if flags & 0x40:
        s += 1 + u8(data, s, e)
    if flags & 0x20:
        s += 2
    tag, s, e = _descriptor(data, s, e)
    if tag != 0x04:
        return "mp4a.40.2"
    object_type = u8(data, s, e)
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
