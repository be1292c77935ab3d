"""Where the origin finds a live presentation's DVR media older than its in-memory window
(delivery stage).

A stream with a DVR window lists minutes to hours of segments in its live playlists; the
rendition window holds only the newest few, the rest were recorded as they completed.
The origin asks a `DvrArchive` for those by the same URIs (`/live/PID/REND/seg-N.m4s`,
`init-G.mp4`); the composition root backs it with the recording store, so delivery never
imports recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from golive.delivery.vod import Unavailable

if TYPE_CHECKING:
    from golive.packaging import Presentation

__all__ = ["DvrArchive"]


class DvrArchive(Protocol):
    """A live presentation's recorded media, as the origin serves its DVR window."""

    async def media(
        self,
        presentation: Presentation,
        rendition: str,
        kind: Literal["init", "segment"],
        number: int,
    ) -> bytes | Unavailable | None:
        """An init (by generation) or segment (by msn) of the presentation's recording;
        None: it has none (never recorded, or lost); "unavailable": storage cannot answer
        now, or the segment is still on its way there."""
        ...
