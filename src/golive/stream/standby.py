"""A hot standby publisher's media, held so it can take over at once (stream).

While one publisher feeds a broadcast, a second one on the stream's other key (the
backup key when the primary is live, or the reverse) is admitted as its standby: its
media is read and dropped, except what a takeover needs to start cleanly. That is its
metadata, its codec configuration, and the tags since its last keyframe, so the
broadcast can continue from the standby's newest GOP the moment the active publisher
drops, instead of waiting for another keyframe or a reconnect. Bounded: a GOP larger
than `max_bytes` is dropped and the buffer waits for the next keyframe.
"""

from __future__ import annotations

from golive.formats import CodecError, MediaTag, TagType, parse_audio_tag, parse_video_tag

__all__ = ["StandbyBuffer"]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024  # one GOP of a 60 Mbit/s source over 2 s fits


class StandbyBuffer:
    """The standby's headers and newest GOP, from its keyframe on."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self._max_bytes = max_bytes
        self.metadata: MediaTag | None = None
        self.video_config: MediaTag | None = None
        self.audio_config: MediaTag | None = None
        self._gop: list[MediaTag] = []
        self._size = 0
        self.dropped_gops = 0  # GOPs larger than max_bytes, given up
        self.malformed_tags = 0

    @property
    def ready(self) -> bool:
        """A takeover can start on a keyframe now."""
        return bool(self._gop)

    def add(self, tag: MediaTag) -> None:
        try:
            if tag.type is TagType.SCRIPT:
                self.metadata = tag
                return
            if tag.type is TagType.VIDEO:
                info = parse_video_tag(tag.body)
                if info.is_sequence_header:
                    self.video_config = tag
                    self._clear()  # frames before a new configuration no longer decode
                    return
                if info.is_keyframe:
                    self._clear()
                    self._keep(tag)
                    return
                if info.is_frame and self._gop:
                    self._keep(tag)
                return
            if tag.type is TagType.AUDIO:
                audio = parse_audio_tag(tag.body)
                if audio.is_sequence_header:
                    self.audio_config = tag
                elif audio.is_frame and self._gop:
                    self._keep(tag)
        except CodecError:
            self.malformed_tags += 1

    def take(self) -> list[MediaTag]:
        """What starts the takeover, in order (headers, then the GOP); empties the buffer."""
        headers = [t for t in (self.metadata, self.video_config, self.audio_config)
                   if t is not None]
        gop, self._gop, self._size = self._gop, [], 0
        return [*headers, *gop]

    def _keep(self, tag: MediaTag) -> None:
        self._size += len(tag.body)
        if self._size > self._max_bytes:
            self.dropped_gops += 1
            self._clear()
            return
        self._gop.append(tag)

    def _clear(self) -> None:
        self._gop.clear()
        self._size = 0
