"""The recording stage: segments persisted as they complete, and the assets they become.

Read side (for VOD playback, MP4 remux, thumbnails): `RecordingLibrary` answers an
asset by id or playback id, a rendition's segments in order
(`segments(asset_id, rendition)` -> `AssetSegmentRecord`s with msn, media start,
duration, PDT, size, discontinuity and object key), and bytes through
`SegmentStorage` (`read(key)`, `read_range(key, start, end)`, `size(key)`).
Object keys are built only by `segment_key` / `init_key` from golive's own ids.
`AssetMp4s` plans and caches assets' progressive MP4s (`/vod/PLAYBACK_ID/high.mp4`).
`LiveArchive` serves a live broadcast's DVR window past memory from its recording.
"""

from golive.recording.config import open_storage
from golive.recording.dvr import LiveArchive
from golive.recording.library import RecordingLibrary
from golive.recording.mp4 import AssetMp4, AssetMp4s
from golive.recording.recorder import Recorder, RecorderStats, RecordingSession
from golive.recording.s3 import S3Storage, check_obstore
from golive.recording.storage import (
    LocalStorage,
    ObjectMissing,
    SegmentStorage,
    StorageError,
    asset_prefix,
    init_key,
    segment_key,
)
from golive.recording.sweeper import RetentionSweeper
from golive.recording.vod import VodCatalog

__all__ = [
    "AssetMp4",
    "AssetMp4s",
    "LiveArchive",
    "LocalStorage",
    "ObjectMissing",
    "Recorder",
    "RecorderStats",
    "RecordingLibrary",
    "RecordingSession",
    "RetentionSweeper",
    "S3Storage",
    "SegmentStorage",
    "StorageError",
    "VodCatalog",
    "asset_prefix",
    "check_obstore",
    "init_key",
    "open_storage",
    "segment_key",
]
