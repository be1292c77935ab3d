"""RFC 8216bis (LL-HLS) rules that golive's playlists must follow, as reusable assertions.

`check_media_playlist` and `check_multivariant` parse with the `m3u8` package and with a
plain line scan (for ordering rules the parser does not keep), and fail with a message
naming the rule. `check_reload` compares two successive media playlists;
`PublishedDates` checks that no reload ever moves a segment's program date.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import m3u8

_TOLERANCE = 1e-4  # playlists print durations with 5 decimals
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line, quotes removed."""
    _, _, rest = line.partition(":")
    return {key: value.strip('"') for key, value in _ATTRIBUTE.findall(rest)}


def _relative(uri: str) -> bool:
    return not uri.startswith("/") and "://" not in uri


def check_media_playlist(text: str, *, low_latency: bool) -> Any:
    """Assert the media playlist rules; return the parsed `m3u8.M3U8` for further checks."""
    lines = text.splitlines()
    assert lines and lines[0] == "#EXTM3U", "a playlist starts with #EXTM3U"
    assert text.endswith("\n"), "a playlist ends with a newline"
    playlist = m3u8.loads(text)
    ended = "#EXT-X-ENDLIST" in lines
    tags = [line.split(":", 1)[0] for line in lines if line.startswith("#EXT")]
    for once in ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE"):
        assert tags.count(once) == 1, f"{once} appears exactly once"
    version = playlist.version
    target = playlist.target_duration
    assert isinstance(target, int) and target >= 1, "EXT-X-TARGETDURATION is a positive integer"
    assert playlist.media_sequence is not None and playlist.media_sequence >= 0

    complete = [s for s in playlist.segments if s.uri is not None]
    for segment in complete:
        assert round(segment.duration) <= target, (
            f"EXTINF {segment.duration} rounds above EXT-X-TARGETDURATION {target}"
        )
        assert segment.duration > 0, "EXTINF is positive"
        assert _relative(segment.uri), f"segment URI {segment.uri} is relative"

    # Ordering: an EXT-X-MAP before the first media, a date-time on the first segment and
    # after each discontinuity.
    first_media = next(
        (i for i, line in enumerate(lines) if line.startswith(("#EXT-X-PART:", "#EXTINF"))), None
    )
    if first_media is not None:
        head = lines[:first_media]
        assert any(line.startswith("#EXT-X-MAP:") for line in head), "EXT-X-MAP precedes media"
        assert any(line.startswith("#EXT-X-PROGRAM-DATE-TIME:") for line in head), (
            "the first segment has EXT-X-PROGRAM-DATE-TIME"
        )
    for i, line in enumerate(lines):
        if line == "#EXT-X-DISCONTINUITY":
            following = lines[i + 1 : i + 4]
            assert any(x.startswith("#EXT-X-PROGRAM-DATE-TIME:") for x in following), (
                "a discontinuity is followed by EXT-X-PROGRAM-DATE-TIME"
            )
        if line.startswith("#EXT-X-MAP:"):
            assert _relative(attributes(line)["URI"]), "EXT-X-MAP URI is relative"
    if playlist.discontinuity_sequence is not None:
        assert playlist.discontinuity_sequence > 0 or "#EXT-X-DISCONTINUITY-SEQUENCE:0" in lines

    skip = playlist.skip if playlist.data.get("skip") else None  # m3u8 gives {} when absent
    if skip is not None:
        assert low_latency, "only low-latency playlists are delta updates"
        assert version >= 9, "EXT-X-SKIP needs version 9"
        assert skip.skipped_segments >= 1, "SKIPPED-SEGMENTS is at least 1"

    if not low_latency:
        assert version >= 6, "EXT-X-MAP in a media playlist needs version 6"
        assert not any(line.startswith("#EXT-X-PART") for line in lines), "no parts when standard"
        assert not any(line.startswith("#EXT-X-PRELOAD-HINT") for line in lines)
        assert all(s.uri is not None for s in playlist.segments), "only complete segments"
        return playlist

    assert version >= 9, "low-latency playlists declare version 9"
    control = playlist.server_control
    assert control is not None, "EXT-X-SERVER-CONTROL present"
    assert control.can_block_reload == "YES", "CAN-BLOCK-RELOAD=YES"
    assert playlist.part_inf is not None, "EXT-X-PART-INF present"
    part_target = playlist.part_inf.part_target
    assert part_target > 0
    assert control.part_hold_back is not None, "PART-HOLD-BACK present"
    assert control.part_hold_back >= 3 * part_target - 1e-3, "PART-HOLD-BACK >= 3 x PART-TARGET"
    if control.can_skip_until is not None:
        assert control.can_skip_until >= 6 * target - 1e-6, "CAN-SKIP-UNTIL >= 6 x target"

    part_uris: list[str] = []
    with_parts = [s for s in playlist.segments if s.parts]
    for segment in with_parts:
        parts = segment.parts
        assert parts[0].independent == "YES", (
            f"the first part of a segment ({parts[0].uri}) is INDEPENDENT=YES"
        )
        final = len(parts) - 1  # unknown for the open segment: its newest part may be short
        for i, part in enumerate(parts):
            part_uris.append(part.uri)
            assert _relative(part.uri), f"part URI {part.uri} is relative"
            assert part.duration <= part_target + _TOLERANCE, (
                f"part {part.uri} ({part.duration}) is longer than PART-TARGET {part_target}"
            )
            if i < final:
                assert part.duration >= 0.85 * part_target - _TOLERANCE, (
                    f"non-final part {part.uri} ({part.duration}) is under 85% of PART-TARGET"
                )
        if segment.uri is not None:
            total = sum(part.duration for part in parts)
            assert math.isclose(total, segment.duration, abs_tol=_TOLERANCE * (len(parts) + 1)), (
                f"the parts of {segment.uri} add up to {total}, not its EXTINF {segment.duration}"
            )
    assert len(part_uris) == len(set(part_uris)), "part URIs are unique"
    if complete and not ended:
        assert complete[-1].parts, "the newest complete segment lists its parts"
    # Parts are listed only for the newest segments: no segment without parts follows one with.
    seen_parts = False
    for segment in playlist.segments:
        if segment.parts:
            seen_parts = True
        else:
            assert not seen_parts, "parts are listed for the newest segments only"

    # Gaps (a rendition the encoder gave up): a gap segment's listed parts are all gaps.
    for segment in playlist.segments:
        if segment.gap_tag:
            assert all(part.gap == "YES" for part in segment.parts), (
                "every part of an EXT-X-GAP segment is GAP=YES"
            )
    last_part = next((s.parts[-1] for s in reversed(playlist.segments) if s.parts), None)
    gapped = last_part is not None and last_part.gap == "YES"

    hints = [line for line in lines if line.startswith("#EXT-X-PRELOAD-HINT:")]
    if ended:
        assert not hints, "no preload hint after EXT-X-ENDLIST"
    elif gapped:
        assert not hints, "no preload hint while the rendition's newest parts are gaps"
    else:
        assert len(hints) == 1, "a live low-latency playlist has one EXT-X-PRELOAD-HINT"
        hint = attributes(hints[0])
        assert hint["TYPE"] == "PART", "the preload hint names a part"
        assert hint["URI"] not in part_uris, "the preload hint names a part not yet listed"
    for line in lines:
        if line.startswith("#EXT-X-RENDITION-REPORT:"):
            report = attributes(line)
            assert _relative(report["URI"]) and report["URI"].endswith(".m3u8")
            assert int(report["LAST-MSN"]) >= 0
            assert "LAST-PART" in report, "rendition reports carry LAST-PART"
    return playlist


def check_reload(before: str, after: str) -> None:
    """Two successive full playlists agree: media sequence monotonic, segments unchanged."""
    old, new = m3u8.loads(before), m3u8.loads(after)
    assert new.media_sequence >= old.media_sequence, "EXT-X-MEDIA-SEQUENCE never decreases"
    old_segments = {
        old.media_sequence + i: s for i, s in enumerate(old.segments) if s.uri is not None
    }
    for i, segment in enumerate(new.segments):
        msn = new.media_sequence + i
        if segment.uri is not None and msn in old_segments:
            previous = old_segments[msn]
            assert previous.uri == segment.uri, f"segment {msn} kept its URI"
            assert math.isclose(previous.duration, segment.duration), f"segment {msn} kept EXTINF"


@dataclass(frozen=True, slots=True)
class DatedSegment:
    msn: int
    date: float  # Unix seconds
    duration: float
    discontinuity: bool  # tagged EXT-X-DISCONTINUITY


def segment_dates(text: str) -> list[DatedSegment]:
    """The complete segments a media playlist lists, each with its program date: its own
    EXT-X-PROGRAM-DATE-TIME or the one before plus the durations between (RFC 8216bis
    4.4.4.6)."""
    out: list[DatedSegment] = []
    msn = 0
    date: float | None = None
    discontinuity = False
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-SKIP:"):
            msn += int(attributes(line)["SKIPPED-SEGMENTS"])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            value = line.split(":", 1)[1].replace("Z", "+00:00")
            date = datetime.fromisoformat(value).timestamp()
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXTINF:"):
            assert date is not None, "a segment before any EXT-X-PROGRAM-DATE-TIME"
            duration = float(line.split(":", 1)[1].split(",")[0])
            out.append(DatedSegment(msn, date, duration, discontinuity))
            msn += 1
            date += duration
            discontinuity = False
    return out


@dataclass
class PublishedDates:
    """Every segment date the playlists showed, to check that none ever moves (RFC 8216bis
    6.2.1: a server only appends to a media playlist)."""

    first_seen: dict[tuple[str, int], DatedSegment] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)

    def see(self, rendition: str, text: str) -> list[DatedSegment]:
        """Record the dates `text` (a media playlist of `rendition`) gives; return them."""
        segments = segment_dates(text)
        for segment in segments:
            seen = self.first_seen.setdefault((rendition, segment.msn), segment)
            if abs(seen.date - segment.date) > 0.0005:  # dates are printed to the ms
                self.moved.append(f"{rendition} msn {segment.msn}: {seen.date:.3f} "
                                  f"then {segment.date:.3f}")
        return segments


def check_multivariant(text: str) -> Any:
    """Assert the multivariant playlist rules; return the parsed `m3u8.M3U8`."""
    lines = text.splitlines()
    assert lines and lines[0] == "#EXTM3U", "a playlist starts with #EXTM3U"
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines, "EXT-X-INDEPENDENT-SEGMENTS present"
    playlist = m3u8.loads(text)
    assert playlist.is_variant, "a multivariant playlist lists variants"
    assert not playlist.segments, "no media segments in a multivariant playlist"
    variants = playlist.playlists
    assert variants, "at least one EXT-X-STREAM-INF"
    bandwidths = []
    for variant in variants:
        info = variant.stream_info
        assert info.bandwidth and info.bandwidth > 0, "BANDWIDTH is required"
        assert info.average_bandwidth is not None, "AVERAGE-BANDWIDTH present"
        assert info.average_bandwidth <= info.bandwidth, "AVERAGE-BANDWIDTH <= BANDWIDTH"
        assert info.codecs, "CODECS present"
        if any(codec.startswith(("avc", "hvc", "hev", "av01")) for codec in info.codecs.split(",")):
            assert info.resolution, "video variants carry RESOLUTION"
            assert info.frame_rate and info.frame_rate > 0, "video variants carry FRAME-RATE"
        assert _relative(variant.uri) and variant.uri.endswith(".m3u8"), "relative URIs"
        bandwidths.append(info.bandwidth)
    assert bandwidths == sorted(bandwidths, reverse=True), "highest bandwidth first"
    for line in lines:
        if line.startswith("#EXT-X-STREAM-INF:") and "FRAME-RATE" in line:
            assert re.search(r"FRAME-RATE=\d+\.\d{3}(,|$)", line), "FRAME-RATE has 3 decimals"
    _check_closed_captions(lines)
    return playlist


def _check_closed_captions(lines: list[str]) -> None:
    """RFC 8216bis 4.4.6.1-2: CLOSED-CAPTIONS names an EXT-X-MEDIA group of TYPE
    CLOSED-CAPTIONS (each with an INSTREAM-ID of CC1-CC4 or SERVICE1-63), or is NONE on
    every variant."""
    groups = {}
    for line in lines:
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=CLOSED-CAPTIONS" in line:
            group = re.search(r'GROUP-ID="([^"]+)"', line)
            instream = re.search(r'INSTREAM-ID="([^"]+)"', line)
            assert group and instream, "a closed-captions rendition has GROUP-ID and INSTREAM-ID"
            assert re.fullmatch(r"CC[1-4]|SERVICE([1-9]|[1-5]\d|6[0-3])", instream[1]), (
                "INSTREAM-ID is CC1-CC4 or SERVICE1-63")
            assert "URI=" not in line, "closed captions are in-band: no URI"
            groups[group[1]] = line
    values = [re.search(r'CLOSED-CAPTIONS=("[^"]*"|NONE)', line)
              for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    said = [m[1] for m in values if m]
    if "NONE" in said:
        assert said == ["NONE"] * len(values), "CLOSED-CAPTIONS=NONE on every variant, or none"
    for value in said:
        if value != "NONE":
            assert value.strip('"') in groups, f"CLOSED-CAPTIONS {value} names a declared group"
