"""Whether a new input can be spliced into the running transcoder (media).

A failover or the slate hands the broadcast a new input whose timestamps the hub
already continues (`stream.Splice`). The transcoder then keeps running when the new
input can go through the same decoder and graph: ffmpeg's FLV reader passes a new
AVC/AAC configuration to the decoder in-band, and its filter graph is re-made for a
new picture size or audio sample rate and channel layout, scaled and resampled to the
ladder's fixed outputs, so the renditions keep their sizes, codecs and keyframes.

No EXT-X-DISCONTINUITY then: RFC 8216bis (4.4.4.2) wants one for a change of file
format, of the number, type or identifiers of tracks, of the timestamp sequence, or of
the encoding parameters or sequence, and the output has none of these: the same
encoders keep encoding (same parameter sets, same init segment), the same tracks, and
decode times that continue fragment after fragment. What changed is only upstream of
the decoder, which a player never sees.

What that cannot cover restarts the transcoder on a fresh timeline instead (one
discontinuity, the old way): another video codec (say H.264 to HEVC: the running
decoder is H.264's), a passthrough rendition when the picture's configuration changed
(it copies the input, so its own parameters would change under the init segment), an
input without audio when the ladder has audio (its audio tracks would stall), an
interlaced input when the ladder's source was progressive (the graph has no
deinterlacer: `command.DEINTERLACE`), and a new picture or sound configuration while
the degrade ladder has rungs given up or at a lowered frame rate: the re-made graph re-reads every gate's initial state and counts
frames from 0 again, so those rungs would come back unasked (a restart starts them as
the step has them, see media/command.py `gate_commands`).
`InputSwitch` holds the new input's first tags (headers only, in practice: the new
input starts at a keyframe) until its first keyframe says which it is. An audio-only
ladder takes a new input of sound alone, at its first audio frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats import CodecError, MediaTag, TagType, describe_video, parse_video_tag
from golive.media.feed import TagKind, classify
from golive.media.ladder import LadderPlan

__all__ = ["InputSwitch", "SwitchDecision"]

MAX_HELD_TAGS = 600  # a new input without a keyframe in this many tags is not spliced


@dataclass(frozen=True, slots=True)
class SwitchDecision:
    """What to do with a new input, and the tags held until it was known."""

    splice: bool
    reason: str  # why not, when `splice` is False
    tags: list[MediaTag]
    # A splice whose new picture or sound configuration may make ffmpeg re-make its graph:
    # the gates then count frames from 0 again (`Transcoder.input_reconfigured`).
    reconfigures: bool = False
    # A splice of an input that sends no sound into a ladder with audio: the running input
    # fills it with silence from the splice on (`Transcoder.sound_gone`).
    silent: bool = False


class InputSwitch:
    """Holds a new input's first tags until its first keyframe decides splice or restart."""

    def __init__(self, plan: LadderPlan, current_video_config: MediaTag | None,
                 current_audio_config: MediaTag | None = None, *,
                 gated: frozenset[str] = frozenset(), fills_silence: bool = False) -> None:
        self._plan = plan
        self._fills_silence = fills_silence  # the running input fills missing sound
        self._current = current_video_config
        self._current_audio = current_audio_config
        self._gated = gated  # rungs whose gates in the running transcoder are not open
        self._tags: list[MediaTag] = []
        self._video_config: MediaTag | None = None
        self._audio_config: MediaTag | None = None
        self._audio = False

    def push(self, tag: MediaTag) -> SwitchDecision | None:
        """Hold `tag`; the decision once this tag settles it, else None."""
        self._tags.append(tag)
        kind = classify(tag)
        if kind is TagKind.VIDEO_CONFIG:
            self._video_config = tag
        elif kind in (TagKind.AUDIO_CONFIG, TagKind.AUDIO):
            self._audio = True
            if kind is TagKind.AUDIO_CONFIG:
                self._audio_config = tag
            elif self._plan.audio_only:
                return self._decide_audio_only()  # its first sound frame decides
        elif kind is TagKind.KEYFRAME:
            if self._plan.audio_only:
                return SwitchDecision(False, "the new input sends video and the ladder is "
                                      "audio only", self._tags)
            return self._decide(tag)
        if len(self._tags) >= MAX_HELD_TAGS:
            return SwitchDecision(False, "the new input sent no keyframe", self._tags)
        return None

    def _decide(self, keyframe: MediaTag) -> SwitchDecision:
        # A configuration the running decoder has not seen may make ffmpeg re-make its graph.
        reconfigures = _differs(self._video_config, self._current) or _differs(
            self._audio_config, self._current_audio)
        reason = self._why_not(keyframe, reconfigures)
        return SwitchDecision(reason is None, reason or "", self._tags, reconfigures,
                              silent=self._plan.has_audio and not self._audio)

    def _decide_audio_only(self) -> SwitchDecision:
        if self._video_config is not None:
            return SwitchDecision(False, "the new input sends video and the ladder is "
                                  "audio only", self._tags)
        reconfigures = _differs(self._audio_config, self._current_audio)
        return SwitchDecision(True, "", self._tags, reconfigures)

    def _why_not(self, keyframe: MediaTag, reconfigures: bool) -> str | None:
        current = self._current
        new = self._video_config
        old_codec = _codec(current) if current is not None else None
        new_codec = _codec(new if new is not None else keyframe)
        if old_codec is not None and new_codec != old_codec:
            return f"the new input sends {new_codec}, the running decoder reads {old_codec}"
        if (new is not None and current is not None and new.body != current.body
                and any(r.passthrough for r in self._plan.renditions)):
            return "a passthrough rendition copies the input and its configuration changed"
        if self._plan.has_audio and not self._audio and not self._fills_silence:
            return "the new input has no audio and the ladder has"
        if (new is not None and _interlaced(new) and not self._plan.source.interlaced
                and any(not r.passthrough for r in self._plan.renditions)):
            return "the new input is interlaced and the running graph does not deinterlace"
        if self._gated and reconfigures:
            return (f"rungs degraded for speed ({', '.join(sorted(self._gated))}) would come "
                    "back when ffmpeg re-makes its graph for the new input's configuration")
        return None


def _differs(new: MediaTag | None, current: MediaTag | None) -> bool:
    """A new configuration the running decoder has not seen (unknown counts as new)."""
    return new is not None and (current is None or new.body != current.body)


def _interlaced(config: MediaTag) -> bool:
    try:
        info = describe_video(parse_video_tag(config.body))
    except CodecError:
        return False
    return bool(info is not None and info.interlaced)


def _codec(tag: MediaTag) -> str | None:
    if tag.type is not TagType.VIDEO:
        return None
    try:
        return parse_video_tag(tag.body).codec
    except CodecError:
        return None
