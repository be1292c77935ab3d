"""On-demand playback below `/vod/`: recorded assets' playlists and media (delivery stage).

The origin knows assets only through `VodDirectory`, which the composition root backs
with the recording library: playlists come rendered, media as bytes from storage.
Storage that cannot answer now is a 503 (retry), never a 404 an edge would keep.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["UNAVAILABLE", "Unavailable", "VodDirectory"]

Unavailable = Literal["unavailable"]
UNAVAILABLE: Unavailable = "unavailable"

VOD_PLAYLIST_MAX_AGE = 60
"""A ready asset's playlists never change, but it can be deleted: edges keep them a minute."""


class VodDirectory(Protocol):
    """Recorded assets by playback id, as the origin serves them."""

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        """Whether this viewer may play the asset (False for a signed one without a token)."""
        ...

    async def playlist(self, playback_id: str, rendition: str | None) -> str | Unavailable | None:
        """The multivariant (`rendition` None) or a media playlist; None: no such asset/rendition."""
        ...

    async def media(
        self, playback_id: str, rendition: str, kind: Literal["init", "segment"], number: int
    ) -> bytes | Unavailable | None:
        """An init (by generation) or media segment (by msn); None: no such object."""
        ...
