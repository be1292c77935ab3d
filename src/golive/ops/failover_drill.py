"""Preflight's failover drill: the session goes over to the backup publisher and back
(control plane, sans-IO).

While a preflight session captures the primary, a backup publisher on the stream's
backup key stands by (`golive.stream.StandbyBuffer`: its headers and newest GOP). Once
the primary has sent `switch_after` seconds, the drill's programme switches to the
backup at its newest keyframe, as the broadcast hub does when a primary drops, carries
`backup_seconds` of the backup's media, then returns to the primary at the primary's
next keyframe and carries a little more of it. The programme is one FLV timeline
(timestamps continue across each switch), bounded by `max_bytes`; preflight decodes it
with ffmpeg to show that a failover on this pair of encoders plays through. Nothing
here reads a clock or runs a process: media timestamps drive it.
"""

from __future__ import annotations

import enum

from golive.formats import (
    CodecError,
    MediaTag,
    TagType,
    encode_header,
    encode_tag,
    parse_video_tag,
)
from golive.stream import StandbyBuffer

__all__ = ["DrillState", "FailoverDrill"]

FRAME_GAP_MS = 33  # between the last tag before a switch and the first after it
RETURN_TAIL_MS = 1000  # primary media kept after the return, so the return is decoded too


class DrillState(enum.StrEnum):
    WAITING = "waiting"  # on the primary, for its first seconds and a ready backup
    ON_BACKUP = "on_backup"
    RETURNING = "returning"  # waiting for the primary's next keyframe
    BACK = "back"  # on the primary again, for RETURN_TAIL_MS
    DONE = "done"
    FAILED = "failed"


class FailoverDrill:
    """Primary and backup tags in, one spliced FLV programme out."""

    def __init__(self, *, switch_after: float, backup_seconds: float, max_bytes: int) -> None:
        self.state = DrillState.WAITING
        self.reason: str | None = None  # why FAILED
        self.flv = bytearray()
        self.video_frames = 0  # frames written to `flv`
        self.backup_media_ms = 0  # backup media carried while switched
        self.backup_connected = False
        self.switched = False  # the programme went over to the backup
        self.returned = False  # and back to the primary
        self._switch_after_ms = round(switch_after * 1000)
        self._backup_ms = round(backup_seconds * 1000)
        self._max_bytes = max_bytes
        self._primary = StandbyBuffer()
        self._backup = StandbyBuffer()
        self._primary_first: int | None = None
        self._run_offset = 0  # added to the current run's timestamps
        self._run_first: int | None = None  # first source timestamp of the current run
        self._last_out = -FRAME_GAP_MS  # the programme's latest timestamp
        self._switch_out = 0  # the programme's timestamp where the backup began
        self._tail_from = 0  # where the primary returned

    @property
    def settled(self) -> bool:
        return self.state in (DrillState.DONE, DrillState.FAILED)

    # Inputs -----------------------------------------------------------------------------

    def primary(self, tag: MediaTag) -> None:
        if self.settled:
            return
        if tag.type is not TagType.SCRIPT and self._primary_first is None:
            self._primary_first = tag.timestamp
        state = self.state
        if state is DrillState.WAITING:
            self._primary.add(tag)
            if not self.flv and self._primary.ready:
                self._start_run(self._primary.take())  # the programme opens on a keyframe
            elif self.flv:
                self._write(tag)
            if self.flv and self._due(tag) and self._backup.ready:
                self.state = DrillState.ON_BACKUP
                self.switched = True
                self._switch_out = self._last_out + FRAME_GAP_MS
                self._start_run(self._backup.take())
        elif state is DrillState.ON_BACKUP:
            self._primary.add(tag)
        elif state is DrillState.RETURNING:
            self._primary.add(tag)
            if _is_keyframe(tag):
                self.state = DrillState.BACK
                self.returned = True
                self._tail_from = self._last_out + FRAME_GAP_MS
                self._start_run(self._primary.take())
        elif state is DrillState.BACK:
            self._write(tag)
            if self._last_out - self._tail_from >= RETURN_TAIL_MS:
                self.state = DrillState.DONE

    def backup(self, tag: MediaTag) -> None:
        self.backup_connected = True
        if self.settled:
            return
        if self.state is DrillState.ON_BACKUP:
            self._write(tag)
            self.backup_media_ms = max(0, self._last_out - self._switch_out)
            if self.backup_media_ms >= self._backup_ms:
                self.state = DrillState.RETURNING
        else:
            self._backup.add(tag)

    def backup_left(self) -> None:
        if self.state is DrillState.ON_BACKUP:
            self._fail("the backup publisher disconnected during the failover")

    def give_up(self, why: str) -> None:
        """The session ends before the drill did."""
        if not self.settled:
            self._fail(why)

    # Internals --------------------------------------------------------------------------

    def _due(self, tag: MediaTag) -> bool:
        first = self._primary_first
        return first is not None and tag.timestamp - first >= self._switch_after_ms

    def _start_run(self, tags: list[MediaTag]) -> None:
        """A new run (headers and a GOP from its keyframe) continues the programme."""
        keyframe = next((t for t in tags if _is_keyframe(t)), None)
        if keyframe is None:
            return
        # Headers carry the time they were sent, long before: the run starts at its keyframe.
        self._run_first = keyframe.timestamp
        self._run_offset = self._last_out + FRAME_GAP_MS - self._run_first
        for tag in tags:
            self._write(tag)

    def _write(self, tag: MediaTag) -> None:
        if self._run_first is None:
            return
        # Audio sent just ahead of the run's keyframe is pulled up to it: timestamps
        # never go back past the switch.
        out = max(tag.timestamp, self._run_first) + self._run_offset
        encoded = encode_tag(MediaTag(tag.type, out, tag.body))
        if not self.flv:
            self.flv += encode_header(audio=True, video=True)
        if len(self.flv) + len(encoded) > self._max_bytes:
            self._fail(f"the drill's programme passed {self._max_bytes} bytes")
            return
        self.flv += encoded
        self._last_out = max(self._last_out, out)
        if tag.type is TagType.VIDEO:
            try:
                info = parse_video_tag(tag.body)
            except CodecError:
                return
            if info.is_frame:
                self.video_frames += 1

    def _fail(self, why: str) -> None:
        self.state = DrillState.FAILED
        self.reason = why


def _is_keyframe(tag: MediaTag) -> bool:
    if tag.type is not TagType.VIDEO:
        return False
    try:
        info = parse_video_tag(tag.body)
    except CodecError:
        return False
    return info.is_keyframe and info.is_frame
