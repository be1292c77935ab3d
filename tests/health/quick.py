"""A node whose alerts show within seconds: a profile with short alert times (health tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import node_settings

from golive.settings import Settings

# One rendition (these nodes do not transcode) and short alert times.
PROFILE = """
name = "quickalerts"
version = 1
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 800
[alerts]
for_seconds = 1
resolve_after_seconds = 2
stall_seconds = 1.5
ingest_speed_seconds = 4
max_keyframe_interval_seconds = 2.0
max_av_drift_seconds = 0.3
"""


def quick_alert_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings of an ingest-only node that has the `quickalerts` profile."""
    settings = node_settings(tmp_path, transcode=False, **overrides)
    profiles = settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "quickalerts.toml").write_text(PROFILE)
    return settings
