"""One timeline for a broadcast's sinks across a switch of input (stream).

When the standby takes over, or the slate goes on or off the air, the new input's
clock has nothing to do with the old one's. A `Splice` rewrites the new input's
timestamps so that what the sinks see goes on where the old input stopped: its first
keyframe lands one frame after the last video tag handed on, everything after it
keeps its own spacing, and its audio starts after the last audio tag handed on (an
overlap is cut, never sent backwards). Tags of the new input before its first
keyframe cannot be decoded and are dropped; its codec configuration and metadata pass
(at the splice point), so a decoder downstream receives them in-band. The sinks keep
running: the transcoder reads one continuous FLV stream and is never restarted for
a switch. Sans-IO: no clock, no sockets.

`restart()` instead lets the next input start its own timeline (a publisher that
returns after a gap in the reconnect window: its media is not continuous in time
with what came before, and pretending it is would move every later timestamp away
from the wall clock by the gap).
"""

from __future__ import annotations

from golive.formats import CodecError, MediaTag, TagType, parse_audio_tag, parse_video_tag

__all__ = ["Splice"]

_MASK = 0xFFFFFFFF  # FLV timestamps are 32-bit milliseconds
DEFAULT_FRAME_MS = 33  # one frame at 30 fps, until the input showed its own spacing
MAX_FRAME_MS = 1000  # a "frame" longer than this is a gap, not a frame rate


def _after(ts: int, reference: int) -> bool:
    """`ts` is later than `reference` on the 32-bit millisecond clock."""
    return ts != reference and ((ts - reference) & _MASK) < 0x80000000


class Splice:
    """Maps each input's timestamps onto the broadcast's one continuous timeline."""

    def __init__(self) -> None:
        self._offset = 0  # added to the current input's timestamps
        self._pending = False  # a switch waits for the new input's first keyframe
        self._last_video: int | None = None  # last timestamps handed on (timeline)
        self._last_audio: int | None = None
        self._frame_ms = DEFAULT_FRAME_MS
        self._audio_floor: int | None = None  # the new input's audio must be after this
        self.switches = 0  # inputs spliced on so far
        self.dropped_tags = 0  # the new inputs' tags before their first keyframe

    @property
    def continuing(self) -> bool:
        """The input that comes next is spliced onto the running timeline."""
        return self._pending

    def switch(self) -> None:
        """The next tags come from a new input: splice it on at its first keyframe."""
        self._pending = True
        self.switches += 1

    def restart(self) -> None:
        """The next input starts its own timeline (its timestamps pass unchanged)."""
        self._pending = False
        self._offset = 0
        self._last_video = self._last_audio = self._audio_floor = None
        self._frame_ms = DEFAULT_FRAME_MS

    def rewrite(self, tag: MediaTag) -> MediaTag | None:
        """`tag` on the broadcast's timeline, or None when it must be dropped."""
        if tag.type is TagType.SCRIPT:
            return tag  # metadata: its time means nothing to a reader
        if tag.type is TagType.VIDEO:
            return self._video(tag)
        if tag.type is TagType.AUDIO:
            return self._audio(tag)
        return tag

    def _video(self, tag: MediaTag) -> MediaTag | None:
        try:
            info = parse_video_tag(tag.body)
        except CodecError:
            return None if self._pending else self._shift(tag)
        if self._pending:
            if info.is_sequence_header or info.is_command or info.is_end_of_sequence:
                return self._at_splice(tag)
            if not info.is_keyframe:
                self.dropped_tags += 1
                return None
            self._begin(tag.timestamp)
        out = self._shift(tag)
        if not (info.is_sequence_header or info.is_command or info.is_end_of_sequence):
            last = self._last_video
            if last is not None and _after(out.timestamp, last):
                spacing = (out.timestamp - last) & _MASK
                if spacing <= MAX_FRAME_MS:
                    self._frame_ms = max(1, spacing)
            if last is None or _after(out.timestamp, last):
                self._last_video = out.timestamp
        return out

    def _audio(self, tag: MediaTag) -> MediaTag | None:
        try:
            header = parse_audio_tag(tag.body).is_sequence_header
        except CodecError:
            header = False
        if self._pending:
            if header:
                return self._at_splice(tag)
            if self._last_video is None:
                self._begin(tag.timestamp)  # no video so far: splice on any audio frame
            else:
                self.dropped_tags += 1
                return None
        out = self._shift(tag)
        if header:
            return out
        floor = self._audio_floor
        if floor is not None:
            if not _after(out.timestamp, floor):
                self.dropped_tags += 1
                return None  # overlaps what the old input's audio already covered
            self._audio_floor = None
        self._last_audio = out.timestamp
        return out

    def _begin(self, first_ts: int) -> None:
        """The new input's first frame (`first_ts`, its own clock) starts here."""
        self._pending = False
        if self._last_video is not None:
            base = (self._last_video + self._frame_ms) & _MASK
        elif self._last_audio is not None:
            base = (self._last_audio + 1) & _MASK
        else:  # nothing handed on yet: nothing to continue
            self._offset = 0
            return
        self._offset = (base - first_ts) & _MASK
        self._audio_floor = self._last_audio

    def _at_splice(self, tag: MediaTag) -> MediaTag:
        """A header of the new input, stamped where the splice will be."""
        last = self._last_video if self._last_video is not None else self._last_audio
        ts = 0 if last is None else (last + 1) & _MASK
        return MediaTag(tag.type, ts, tag.body)

    def _shift(self, tag: MediaTag) -> MediaTag:
        if not self._offset:
            return tag
        return MediaTag(tag.type, (tag.timestamp + self._offset) & _MASK, tag.body)
