"""Recorded assets as the origin serves them below `/vod/` (recording).

`VodCatalog` answers the origin's `VodDirectory` from the recording library: only
ready assets play; playlists are rendered by packaging's pure VOD functions and kept
in a small cache (a ready asset's index never changes); media is read from storage.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Literal

from golive.packaging import VodRendition, vod_media_playlist, vod_multivariant_playlist
from golive.recording.library import RecordingLibrary
from golive.recording.storage import ObjectMissing, StorageError, init_key, segment_key
from golive.store import AssetRecord, AssetRenditionRecord

__all__ = ["VodCatalog"]

log = logging.getLogger(__name__)

ASSET_TTL = 5.0
"""Seconds a playback id's asset is remembered (a deleted asset stops playing within it)."""
CACHE_ENTRIES = 256


class VodCatalog:
    def __init__(self, library: RecordingLibrary) -> None:
        self._library = library
        self._assets: OrderedDict[str, tuple[float, AssetRecord | None]] = OrderedDict()
        self._playlists: OrderedDict[tuple[str, str | None], str] = OrderedDict()

    async def _asset(self, playback_id: str) -> AssetRecord | None:
        now = time.monotonic()
        cached = self._assets.get(playback_id)
        if cached is not None and now - cached[0] < ASSET_TTL:
            return cached[1]
        asset = await self._library.asset_for_playback(playback_id)
        if asset is not None and asset.status != "ready":
            asset = None
        self._assets[playback_id] = (now, asset)
        self._assets.move_to_end(playback_id)
        while len(self._assets) > CACHE_ENTRIES:
            self._assets.popitem(last=False)
        return asset

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        try:
            asset = await self._asset(playback_id)
        except Exception:
            return True  # the request itself answers 503
        # Signed playback tokens arrive with the security issue; until then a signed
        # asset, like a signed live playback id, is never served.
        return asset is None or asset.playback_policy != "signed"

    async def playlist(
        self, playback_id: str, rendition: str | None
    ) -> str | Literal["unavailable"] | None:
        try:
            asset = await self._asset(playback_id)
            if asset is None:
                return None
            key = (asset.id, rendition)
            text = self._playlists.get(key)
            if text is not None:
                self._playlists.move_to_end(key)
                return text
            if rendition is None:
                text = vod_multivariant_playlist(playback_id, [_rendition(r) for r in asset.renditions],
                                                 captions=asset.captions,
                                                 caption_channels=asset.caption_channels)
            else:
                if rendition not in {r.name for r in asset.renditions}:
                    return None
                segments = await self._library.segments(asset.id, rendition)
                if not segments:
                    return None
                text = vod_media_playlist(rendition, segments)
        except Exception as exc:
            log.warning("vod playlist unavailable playback_id=%s error=%s", playback_id, exc)
            return "unavailable"
        self._playlists[key] = text
        while len(self._playlists) > CACHE_ENTRIES:
            self._playlists.popitem(last=False)
        return text

    async def media(
        self, playback_id: str, rendition: str, kind: Literal["init", "segment"], number: int
    ) -> bytes | Literal["unavailable"] | None:
        try:
            asset = await self._asset(playback_id)
            if asset is None or rendition not in {r.name for r in asset.renditions}:
                return None
            if kind == "init":
                key = init_key(asset.id, rendition, number)
            else:
                key = segment_key(asset.id, rendition, number)
            return await self._library.storage.read(key)
        except ObjectMissing:
            return None
        except StorageError as exc:
            log.warning("vod media unavailable playback_id=%s error=%s", playback_id, exc)
            return "unavailable"
        except Exception as exc:
            log.warning("vod media unavailable playback_id=%s error=%s", playback_id, exc)
            return "unavailable"


def _rendition(r: AssetRenditionRecord) -> VodRendition:
    return VodRendition(r.name, r.bandwidth, r.average_bandwidth, r.frame_rate, r.codecs,
                        r.width, r.height)
