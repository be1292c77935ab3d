"""The web pages: the watch page, the embeddable player, QoE intake, and the studio (web).

`web_routes` builds the routes the composition root adds to the site root:
`/watch/PLAYBACK_ID`, `/embed/PLAYBACK_ID`, `/watch/PLAYBACK_ID/status`,
`POST /qoe/PLAYBACK_ID` and the static assets under `/static/`. The streamer's studio
(`/studio`, `golive.web.studio`) is added separately: it needs the API app it forwards to,
and so is `ThumbnailRoute` (`/thumbnail/PLAYBACK_ID.jpg`): it needs the media stage's
`Thumbnailer`.
"""

from golive.web.assets import AssetCatalog
from golive.web.routes import web_routes
from golive.web.session import SessionBook, StudioSessions
from golive.web.studio import Studio, studio_routes
from golive.web.thumbnails import AssetFrames, RecordedFrames, ThumbnailRoute

__all__ = [
    "AssetCatalog",
    "AssetFrames",
    "RecordedFrames",
    "SessionBook",
    "Studio",
    "StudioSessions",
    "ThumbnailRoute",
    "studio_routes",
    "web_routes",
]
