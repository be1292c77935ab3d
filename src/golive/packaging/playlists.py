"""Playlist lines live and on-demand playlists share (stage: packaging)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from golive.formats import CAPTION_CHANNELS

__all__ = ["captions_media", "date_time", "seconds", "stream_inf"]


def seconds(value: float) -> str:
    """A duration as playlists write it (EXTINF, PART DURATION)."""
    return f"{value:.5f}"


def date_time(value: datetime) -> str:
    """EXT-X-PROGRAM-DATE-TIME's value: UTC with milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def stream_inf(
    *,
    uri: str,
    bandwidth: int,
    average_bandwidth: int,
    codecs: str,
    resolution: tuple[int, int] | None,
    frame_rate: float,
    captions: bool = False,
) -> list[str]:
    """The EXT-X-STREAM-INF line of one rendition and its URI line.

    `resolution` is None for a rendition without video; `captions`: its pictures carry
    the CEA-608 captions `captions_media` declares.
    """
    attributes = [
        f"BANDWIDTH={bandwidth}",
        f"AVERAGE-BANDWIDTH={average_bandwidth}",
        f'CODECS="{codecs}"',
    ]
    if resolution is not None and resolution[0] and resolution[1]:
        attributes.append(f"RESOLUTION={resolution[0]}x{resolution[1]}")
    if resolution is not None and frame_rate > 0:
        attributes.append(f"FRAME-RATE={frame_rate:.3f}")
    if resolution is not None:
        # Said either way: without the attribute, Shaka Player probes a segment for
        # captions at load; 5.2 may probe the open one, which has no URI yet, and fails
        # the whole load. And hls.js shows in-band captions only when they are declared.
        attributes.append(f'CLOSED-CAPTIONS="{CAPTIONS_GROUP}"' if captions
                          else "CLOSED-CAPTIONS=NONE")
    return ["#EXT-X-STREAM-INF:" + ",".join(attributes), uri]


CAPTIONS_GROUP = "cc"


def captions_media(channels: Collection[str] = ()) -> list[str]:
    """The captions a source's pictures carry, as a multivariant playlist offers them: one
    EXT-X-MEDIA per CEA-608 channel. CC1, the one encoders and caption services use, is
    always offered (the default; cc_data whose channel no control code named yet is taken
    for it), then each other channel the source was found to use (a second language is
    usually CC3), not selected unless the viewer picks it. Their languages are not known."""
    lines = []
    for channel in ("CC1", *sorted(c for c in set(channels) if c in CAPTION_CHANNELS[1:])):
        first = channel == "CC1"
        lines.append(f'#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="{CAPTIONS_GROUP}",'
                     f'NAME="{"Captions" if first else f"Captions {channel}"}",'
                     f'INSTREAM-ID="{channel}",'
                     + ("DEFAULT=YES,AUTOSELECT=YES" if first else "DEFAULT=NO,AUTOSELECT=NO"))
    return lines
