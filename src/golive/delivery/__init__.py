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
    Viewer,
    mint_playback_token,
    session_key_from,
)
from golive.delivery.access_hook import (
    AccessHook,
    AccessQuestion,
    HookDecision,
    HookedPublishTarget,
    StreamHook,
)
from golive.delivery.dvr import DvrArchive
from golive.delivery.origin import Origin, create_origin_app
from golive.delivery.relay import (
    OWNER_UNKNOWN,
    RELAY_HEADER,
    THUMBNAIL_PARAMS,
    OwnerDirectory,
    OwnerRelay,
    OwnerUnknown,
    Relayed,
    RelaySeal,
)
from golive.delivery.stats import PART_LATENCY_BUCKETS, OriginStats
from golive.delivery.vod import UNAVAILABLE, Unavailable, VodDirectory
from golive.delivery.whep import WebRtcFeed, WhepEndpoint

__all__ = [
    "OWNER_UNKNOWN",
    "PART_LATENCY_BUCKETS",
    "RELAY_HEADER",
    "THUMBNAIL_PARAMS",
    "UNAVAILABLE",
    "AccessDirectory",
    "AccessHook",
    "AccessQuestion",
    "Audience",
    "DvrArchive",
    "Grant",
    "HookDecision",
    "HookedPublishTarget",
    "Origin",
    "OriginStats",
    "OwnerDirectory",
    "OwnerRelay",
    "OwnerUnknown",
    "PlaybackAccess",
    "PlaybackRule",
    "Refusal",
    "RelaySeal",
    "Relayed",
    "StreamHook",
    "Unavailable",
    "VerificationKey",
    "Viewer",
    "VodDirectory",
    "WebRtcFeed",
    "WhepEndpoint",
    "create_origin_app",
    "mint_playback_token",
    "session_key_from",
]
