"""The recording stage: segments persisted as they complete, and the assets they become.

Read side (for VOD playback, MP4 remux, thumbnails): `RecordingLibrary` answers an
asset by id or playback id, a rendition's segments in order
(`segments(asset_id, rendition)` -> `AssetSegmentRecord`s with msn, media start,
duration, PDT, size, discontinuity and object key), and bytes through
`SegmentStorage` (`read(key)`, `read_range(key, start, end)`, `size(key)`).
Object keys are built only by `segment_key` / `init_key` from golive's own ids.
"""

from golive.recording.library import RecordingLibrary
from golive.recording.storage import (
    LocalStorage,
    ObjectMissing,
    SegmentStorage,
    StorageError,
    asset_prefix,
    init_key,
    segment_key,
)

__all__ = [
    "LocalStorage",
    "ObjectMissing",
    "RecordingLibrary",
    "SegmentStorage",
    "StorageError",
    "asset_prefix",
    "init_key",
    "segment_key",
]
