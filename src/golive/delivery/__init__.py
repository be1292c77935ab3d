"""HTTP origin: serves LL-HLS playlists and media from the packaging windows, WHEP, and
who may play what (signed playback tokens, restrictions) (delivery)."""

from golive.delivery.access import (
    AccessDirectory,
    Audience,
    Grant,
    PlaybackAccess,
    PlaybackRule,
    Refusal,
    VerificationKey,
    mint_playback_token,
)
from golive.delivery.origin import create_origin_app
from golive.delivery.whep import WebRtcFeed, WhepEndpoint

__all__ = [
    "AccessDirectory",
    "Audience",
    "Grant",
    "PlaybackAccess",
    "PlaybackRule",
    "Refusal",
    "VerificationKey",
    "WebRtcFeed",
    "WhepEndpoint",
    "create_origin_app",
    "mint_playback_token",
]
