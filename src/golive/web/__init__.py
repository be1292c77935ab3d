"""The viewer-facing web pages: the watch page, the embeddable player, and QoE intake (web).

`web_routes` builds the routes the composition root adds to the site root:
`/watch/PLAYBACK_ID`, `/embed/PLAYBACK_ID`, `/watch/PLAYBACK_ID/status`,
`POST /qoe/PLAYBACK_ID` and the static assets under `/static/`.
"""

from golive.web.routes import web_routes

__all__ = ["web_routes"]
