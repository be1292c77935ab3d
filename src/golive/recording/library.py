"""Recorded assets as readers see them: the index and the objects it names (recording).

`RecordingLibrary` is the read side other features build on (VOD playlists, the
progressive MP4 remux, thumbnails of assets): an asset by id or playback id, a
rendition's segments in order, and their bytes from storage. Deleting an asset
removes every object under its prefix, then its rows, then says so on the bus.
"""

from __future__ import annotations

import logging

from golive.core import Event, EventBus, EventType
from golive.recording.storage import (
    ObjectMissing,
    SegmentStorage,
    asset_prefix,
    init_key,
    segment_key,
)
from golive.store import AssetInitRecord, AssetRecord, AssetSegmentRecord, AssetStore

__all__ = ["RecordingLibrary"]

log = logging.getLogger(__name__)


class RecordingLibrary:
    """Read (and delete) recorded assets: the index in the store, the bytes in `storage`."""

    def __init__(self, assets: AssetStore, storage: SegmentStorage, bus: EventBus) -> None:
        self.assets = assets
        self.storage = storage
        self._bus = bus

    async def asset(self, asset_id: str) -> AssetRecord | None:
        return await self.assets.get(asset_id)

    async def asset_for_playback(self, playback_id: str) -> AssetRecord | None:
        """The asset a VOD playback id names, whatever its status."""
        return await self.assets.by_playback_id(playback_id)

    async def segments(self, asset_id: str, rendition: str) -> list[AssetSegmentRecord]:
        """The stored segments of one rendition of an asset, in playback order."""
        return await self.assets.segments(asset_id, rendition)

    async def inits(self, asset_id: str, rendition: str) -> list[AssetInitRecord]:
        """The init segments of one rendition, by generation (one per encoder run)."""
        return await self.assets.inits(asset_id, rendition)

    async def segment_bytes(self, asset_id: str, rendition: str, msn: int) -> bytes | None:
        """A stored segment's bytes; None if the index has no such segment.

        Raises `StorageError` when storage cannot answer now.
        """
        if await self.assets.segment(asset_id, rendition, msn) is None:
            return None
        try:
            return await self.storage.read(segment_key(asset_id, rendition, msn))
        except ObjectMissing:
            return None

    async def init_bytes(self, asset_id: str, rendition: str, generation: int) -> bytes | None:
        """A stored init segment's bytes; None if the index has no such init."""
        inits = await self.assets.inits(asset_id, rendition)
        if not any(init.generation == generation for init in inits):
            return None
        try:
            return await self.storage.read(init_key(asset_id, rendition, generation))
        except ObjectMissing:
            return None

    async def delete(self, asset_id: str) -> bool:
        """Remove the asset's objects (everything under its prefix), then its index rows.

        Objects go first: should storage fail, the asset stays listed and can be deleted
        again, instead of leaving objects nothing points to. Returns False if no such asset.
        """
        asset = await self.assets.get(asset_id)
        if asset is None:
            return False
        removed = await self.storage.delete_prefix(asset_prefix(asset_id))
        await self.assets.delete(asset_id)
        log.info("asset deleted asset_id=%s stream_id=%s objects=%d", asset_id, asset.stream_id,
                 removed)
        self._bus.publish(Event(
            type=EventType.ASSET_DELETED, stream_id=asset.stream_id,
            broadcast_id=asset.broadcast_id, data={"asset_id": asset_id},
        ))
        return True
