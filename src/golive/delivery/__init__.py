"""HTTP origin: serves LL-HLS playlists and media from the packaging windows (delivery)."""

from golive.delivery.origin import create_origin_app
from golive.delivery.vod import UNAVAILABLE, Unavailable, VodDirectory
from golive.delivery.whep import WebRtcFeed, WhepEndpoint

__all__ = [
    "UNAVAILABLE",
    "Unavailable",
    "VodDirectory",
    "WebRtcFeed",
    "WhepEndpoint",
    "create_origin_app",
]
