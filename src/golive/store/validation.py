"""Checks on values before they reach the database (control plane).

The API and the CLI hand user input straight to the store, so the store is where
a bad value becomes a `ValueError` that says what is allowed, before any row is
touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from golive.store.models import LATENCY_MODES

MAX_RECONNECT_WINDOW = 1800.0
MAX_NAME_LENGTH = 200
MAX_PROFILE_LENGTH = 64
# libsrt accepts passphrases of 10 to 79 characters.
SRT_PASSPHRASE_LENGTH = (10, 79)

# `profile` is set with the stream (create) and then only by pinning a published version
# (ProfileRepository.pin_stream_profile), which keeps the pin history and the live freeze.
UPDATABLE_STREAM_FIELDS = frozenset(
    {"name", "latency_mode", "reconnect_window", "recording",
     "recording_retention_days", "srt_passphrase", "webrtc_playback", "dvr_window"}
)

MAX_DVR_WINDOW = 6 * 3600


def check_dvr_window(value: object) -> int:
    """Seconds a stream's live playlists list for seeking back: 0 (off) or up to six hours."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DVR_WINDOW:
        raise ValueError(f"dvr_window must be 0 (off) to {MAX_DVR_WINDOW} seconds; got {value!r}")
    return value


def check_dvr_recording(dvr_window: int, recording: bool) -> None:
    """A DVR window reaches past the segments held in memory into the broadcast's recording:
    only a recorded stream can have one."""
    if dvr_window > 0 and not recording:
        raise ValueError("dvr_window needs recording: the window's older segments are served "
                         "from the recording; turn recording on or set dvr_window to 0")


MAX_RETENTION_DAYS = 36500


def check_retention_days(value: object) -> int | None:
    """Days a stream's recordings are kept: None (the node's default) or 1..36500."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"recording_retention_days must be empty or 1..{MAX_RETENTION_DAYS}; got {value!r}"
        )
    return value


def check_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_text(what: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters")
    return value


def check_reconnect_window(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("reconnect_window must be a number of seconds")
    window = float(value)
    if not math.isfinite(window) or not 0 <= window <= MAX_RECONNECT_WINDOW:
        raise ValueError(
            f"reconnect_window must be between 0 and {MAX_RECONNECT_WINDOW:g} seconds; "
            f"got {value!r}"
        )
    return window


def check_bool(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false")
    return value


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer; got {limit!r}")
    return limit


def check_srt_passphrase(value: object) -> str | None:
    if value is None or value == "":
        return None  # unencrypted SRT
    low, high = SRT_PASSPHRASE_LENGTH
    if not isinstance(value, str) or not low <= len(value) <= high or not value.isprintable():
        raise ValueError(f"srt_passphrase must be {low} to {high} printable characters")
    return value


def validate_stream_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The stream settings in `fields`, checked; ValueError names the first bad one."""
    unknown = sorted(set(fields) - UPDATABLE_STREAM_FIELDS)
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(unknown)}; updatable fields are "
            f"{', '.join(sorted(UPDATABLE_STREAM_FIELDS))}"
        )
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            clean[key] = check_text("name", value, MAX_NAME_LENGTH)
        elif key == "latency_mode":
            clean[key] = check_choice("latency_mode", value, LATENCY_MODES)
        elif key == "reconnect_window":
            clean[key] = check_reconnect_window(value)
        elif key in ("recording", "webrtc_playback"):
            clean[key] = check_bool(key, value)
        elif key == "srt_passphrase":
            clean[key] = check_srt_passphrase(value)
        elif key == "recording_retention_days":
            clean[key] = check_retention_days(value)
        elif key == "dvr_window":
            clean[key] = check_dvr_window(value)
    return clean
