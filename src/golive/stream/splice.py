"""One timeline for a broadcast's sinks across a switch of input (stream).

When the standby takes over, or the slate goes on or off the air, the new input's
clock has nothing to do with the old one's. A `Splice` rewrites the new input's
timestamps so that what the sinks see goes on where the old input stopped: its first
keyframe lands one frame after the last video tag handed on, or, when the tags' arrival
times are given, as much later as it arrived after that tag (up to `MAX_FILL_MS`), so
media time goes on keeping pace with the ingest clock across a hung input's silence
(the transcoder's frame-rate filter repeats the last picture over the hole, its
resampler fills the audio with silence, and program dates, which are the ingest clock,
stay true). Everything after it keeps its own spacing, and its audio starts after the
last audio tag handed on (an overlap is cut, never sent backwards). Tags of the new input before its first
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
MAX_FILL_MS = 3000
"""The longest silence a splice carries into media time: the encoder makes this much
repeated picture at once when the new input arrives, so a longer silence (a hung input
with a long failover threshold) is cut to it, and dates trail the ingest clock by the rest."""


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
        self._last_video_at: float | None = None  # when the last video tag handed on arrived
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
        self._last_video_at = None
        self._frame_ms = DEFAULT_FRAME_MS

    def rewrite(self, tag: MediaTag, arrived_at: float | None = None) -> MediaTag | None:
        """`tag` on the broadcast's timeline, or None when it must be dropped.

        `arrived_at` (monotonic seconds): when the tag reached golive; given for video,
        a new input's first keyframe is placed by it (see the module's docstring)."""
        if tag.type is TagType.SCRIPT:
            return tag  # metadata: its time means nothing to a reader
        if tag.type is TagType.VIDEO:
            return self._video(tag, arrived_at)
        if tag.type is TagType.AUDIO:
            return self._audio(tag)
        return tag

    def _video(self, tag: MediaTag, arrived_at: float | None) -> MediaTag | None:
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
            self._begin(tag.timestamp, arrived_at)
        out = self._shift(tag)
        if not (info.is_sequence_header or info.is_command or info.is_end_of_sequence):
            last = self._last_video
            if last is not None and _after(out.timestamp, last):
                spacing = (out.timestamp - last) & _MASK
                if spacing <= MAX_FRAME_MS:
                    self._frame_ms = max(1, spacing)
            if last is None or _after(out.timestamp, last):
                self._last_video = out.timestamp
                self._last_video_at = arrived_at
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

    def _begin(self, first_ts: int, arrived_at: float | None = None) -> None:
        """The new input's first frame (`first_ts`, its own clock, arrived at `arrived_at`)
        starts here."""
        self._pending = False
        if self._last_video is not None:
            step = self._frame_ms
            if arrived_at is not None and self._last_video_at is not None:
                silence = round((arrived_at - self._last_video_at) * 1000)
                step = max(step, min(silence, MAX_FILL_MS))
            base = (self._last_video + step) & _MASK
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
