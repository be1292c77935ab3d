"""Progressive MP4s of recorded assets: `high.mp4` and `low.mp4`, planned from storage (recording).

`AssetMp4s.progressive(playback_id, quality)` finds a ready asset's highest ("high") or
lowest ("low") bandwidth rendition and plans its progressive MP4 with
`golive.formats.plan_progressive`: the stored segments are read once, one at a time, by
a worker thread that asks the event loop for each (memory: one segment; the loop never
runs the CPU work). The plan (moov + where each byte comes from) is kept in a small LRU,
so later requests and byte ranges read only the segments under them. A ready asset
never changes, so a plan never goes stale; a deleted one is simply not found again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator
from typing import Literal

from golive.formats import (
    FragmentReader,
    InitSegment,
    IsobmffError,
    ProgressiveMp4,
    plan_progressive,
    video_decoder_config,
)
from golive.recording.library import RecordingLibrary
from golive.recording.storage import StorageError, init_key
from golive.store import AssetRecord, AssetSegmentRecord

__all__ = ["AssetMp4", "AssetMp4s", "Quality"]

log = logging.getLogger(__name__)

Quality = Literal["high", "low"]
PLAN_CACHE = 8
"""Plans kept: a 2-hour rendition's moov is a few MB."""


class AssetMp4:
    """One asset rendition's planned MP4 and the stored segments its bytes come from."""

    def __init__(self, library: RecordingLibrary, asset_id: str,
                 segments: list[AssetSegmentRecord], plan: ProgressiveMp4) -> None:
        self._library = library
        self.asset_id = asset_id
        self.segments = segments
        self.plan = plan

    @property
    def etag(self) -> str:
        return f'"{self.asset_id}-{self.segments[0].rendition}-{self.plan.size}"'

    async def fragment(self, index: int) -> bytes:
        """The bytes of stored segment `index` (raises StorageError when storage fails)."""
        return await self._library.storage.read(self.segments[index].key)


class AssetMp4s:
    """Plans and caches the progressive MP4s of ready assets."""

    def __init__(self, library: RecordingLibrary, *, cache: int = PLAN_CACHE) -> None:
        self._library = library
        self._cache: OrderedDict[tuple[str, str], AssetMp4] = OrderedDict()
        self._size = cache
        self._planning: dict[tuple[str, str], asyncio.Future[AssetMp4 | None]] = {}

    async def progressive(self, playback_id: str, quality: Quality
                          ) -> AssetMp4 | Literal["unavailable"] | None:
        """The planned MP4; None: no such ready asset, or one a plain MP4 cannot hold;
        "unavailable": storage cannot answer now."""
        try:
            asset = await self._library.asset_for_playback(playback_id)
            if asset is None or asset.status != "ready" or not asset.renditions:
                return None
            ranked = sorted(asset.renditions, key=lambda r: (r.bandwidth, r.name))
            rendition = (ranked[-1] if quality == "high" else ranked[0]).name
            key = (asset.id, rendition)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            running = self._planning.get(key)
            if running is not None:
                return await asyncio.shield(running)
            future: asyncio.Future[AssetMp4 | None] = asyncio.get_running_loop().create_future()
            self._planning[key] = future
            try:
                planned = await self._plan(asset, rendition)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved here: no sharer may be waiting
                raise
            finally:
                self._planning.pop(key, None)
            future.set_result(planned)
        except StorageError as exc:
            log.warning("asset mp4 unavailable playback_id=%s error=%s", playback_id, exc)
            return "unavailable"
        if planned is not None:
            self._cache[key] = planned
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return planned

    async def _plan(self, asset: AssetRecord, rendition: str) -> AssetMp4 | None:
        segments = await self._library.segments(asset.id, rendition)
        inits = await self._library.inits(asset.id, rendition)
        if not segments or not inits:
            return None
        storage = self._library.storage
        init_bytes = {i.generation: await storage.read(init_key(asset.id, rendition,
                                                                i.generation))
                      for i in inits}
        generations = {s.generation for s in segments}
        if not generations <= init_bytes.keys():
            log.warning("asset mp4 refused asset_id=%s rendition=%s reason=missing_init",
                        asset.id, rendition)
            return None
        first = init_bytes[segments[0].generation]
        if any(not _same_media(first, init_bytes[g]) for g in generations):
            # One plain MP4 track has one sample description here: an encoder that came
            # back with other parameters cannot share it. The HLS asset still plays.
            log.warning("asset mp4 refused asset_id=%s rendition=%s reason=encoder_changed",
                        asset.id, rendition)
            return None
        loop = asyncio.get_running_loop()

        def stored() -> Iterator[bytes]:
            for segment in segments:
                yield asyncio.run_coroutine_threadsafe(storage.read(segment.key), loop).result()

        try:
            plan = await asyncio.to_thread(plan_progressive, first, stored())
        except IsobmffError as exc:
            log.warning("asset mp4 refused asset_id=%s rendition=%s reason=%s",
                        asset.id, rendition, exc)
            return None
        log.info("asset mp4 planned asset_id=%s rendition=%s bytes=%d duration=%.3f",
                 asset.id, rendition, plan.size, plan.duration)
        return AssetMp4(self._library, asset.id, segments, plan)


def _same_media(a: bytes, b: bytes) -> bool:
    """Whether two init segments describe the same tracks with the same codec setup."""
    if a == b:
        return True
    try:
        (first,), (second,) = FragmentReader().feed(a), FragmentReader().feed(b)
    except (IsobmffError, ValueError):
        return False
    if not isinstance(first, InitSegment) or not isinstance(second, InitSegment):
        return False
    return first.tracks == second.tracks and video_decoder_config(a) == video_decoder_config(b)
