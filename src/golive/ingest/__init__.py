"""Ingest stage: accepts publishers and turns them into timestamped media for a broadcast."""

from golive.ingest.rtmp.server import RtmpServer
from golive.ingest.rtmp.tcpinfo import TcpRoundTrip
from golive.ingest.srt.server import SrtServer
from golive.ingest.whip import WhipEndpoint, WhipLimits

__all__ = [
    "RtmpServer",
    "SrtServer",
    "TcpRoundTrip",
    "WhipEndpoint",
    "WhipLimits",
]
