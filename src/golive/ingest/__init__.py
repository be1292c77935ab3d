"""Ingest stage: accepts publishers and turns them into timestamped media for a broadcast."""

from golive.ingest.rtmp.server import RtmpServer
from golive.ingest.srt.server import SrtServer
from golive.ingest.whip import WhipEndpoint, WhipLimits

__all__ = [
    "RtmpServer",
    "SrtServer",
    "WhipEndpoint",
    "WhipLimits",
]
