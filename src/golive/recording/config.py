"""The node's recording storage, as its settings choose it (recording)."""

from __future__ import annotations

from golive.recording.s3 import S3Storage
from golive.recording.storage import LocalStorage, SegmentStorage
from golive.settings import Settings

__all__ = ["open_storage"]


def open_storage(settings: Settings) -> SegmentStorage:
    """S3-compatible storage when `storage_url` is set, else local disk under data_dir."""
    if not settings.storage_url:
        return LocalStorage(settings.recordings_dir)
    secret = settings.storage_s3_secret_access_key
    return S3Storage(
        settings.storage_url,
        endpoint=settings.storage_s3_endpoint,
        region=settings.storage_s3_region,
        access_key_id=settings.storage_s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else "",
        path_style=settings.storage_s3_path_style,
        timeout=settings.storage_timeout,
    )
