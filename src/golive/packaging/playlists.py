"""Playlist lines live and on-demand playlists share (stage: packaging)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["date_time", "seconds", "stream_inf"]


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
) -> list[str]:
    """The EXT-X-STREAM-INF line of one rendition and its URI line.

    `resolution` is None for a rendition without video.
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
        # The ladder carries no CEA-608/708 captions. Said so, Shaka Player does not
        # probe a segment for them at load; 5.2 may probe the open one, which has no
        # URI yet, and fails the whole load.
        attributes.append("CLOSED-CAPTIONS=NONE")
    return ["#EXT-X-STREAM-INF:" + ",".join(attributes), uri]
