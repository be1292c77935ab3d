"""The live pipeline: each broadcast's media → one supervised transcoder → a presentation (media).

`LivePipeline` observes the broadcast hub. When a broadcast starts it holds the
first tags until the source is known (`source`), plans the ladder from the
stream's profile, starts the transcoder, and publishes a `Presentation` under
every playback id of the stream, which the origin serves. With WHEP playback the
transcoder writes one more, WebRTC-safe output, handed to a sink the composition
root's factory makes per broadcast (`output.OutputSink`). An input that takes over
at once (the standby on failover, the slate, a publisher back while the slate is on)
is spliced into the running transcoder: the hub continues its timestamps and the
transcoder's graph adapts to its picture and audio (`switch`), so the output goes on
without a discontinuity. A publisher that returns after a gap, or an input the running
transcoder cannot take, gets a transcoder on a fresh timeline, behind a discontinuity,
producing the same ladder (`rejoin`: scaled to it if its resolution changed), so
players keep their playlists; when that cannot be, the presentation ends and a new one starts. The
end of a broadcast ends the playlists (EXT-X-ENDLIST), which stay served for a
while so players see the end, and closes the sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from golive.core import Event, EventBus, EventType
from golive.formats import Fragment, InitSegment, MediaTag
from golive.media.command import WEBRTC_OUTPUT, WebRtcRendition
from golive.media.facts import EncoderFacts, PipelineFacts, WebRtcOutputFacts
from golive.media.feed import TagKind, classify, ts_before
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.output import OutputSink
from golive.media.profiles import StreamProfile, load_profile, parse_profile
from golive.media.progress import EncodeProgress
from golive.media.rejoin import RejoinError, rejoin_plan
from golive.media.slate import SlateCache, SlateRun, SlateSpec
from golive.media.source import SourceProbe
from golive.media.switch import InputSwitch, SwitchDecision
from golive.media.transcoder import EncoderCapabilities, Transcoder
from golive.packaging import Continuation, Presentation, SegmentObserver, WallClock
from golive.stream import Broadcast, SlateFeed

__all__ = ["BroadcastPipeline", "LivePipeline", "RenditionTap"]

log = logging.getLogger(__name__)

# An ended presentation is served this many of its target durations at least, so that
# players reloading at their slowest (standard HLS: once a target duration; a blocked
# LL-HLS reload is held at most three) see its EXT-X-ENDLIST before its successor.
_RETIRED_TARGETS = 3
# How long a broadcast's first presentation waits for the cluster's registry to say where
# another node left it off (a takeover); then it numbers from the clock (unique, not
# continuous). Viewers of a broadcast being taken over are held that long anyway.
CONTINUATION_WAIT = 3.0
SOUND_GAP_MS = 3000  # picture without sound that ends the ladder's audio (once a broadcast)

S = TypeVar("S", bound=OutputSink)
"""The WebRTC output's sink type, chosen by the composition root."""


class RenditionTap(Protocol):
    """Reads one rendition's encoded output as it is made (a destination forwarding it).
    Called on the live path: takes note and returns, never blocks or raises."""

    @property
    def rendition(self) -> str: ...

    def on_init(self, init: InitSegment) -> None: ...

    def on_fragment(self, fragment: Fragment) -> None: ...


class BroadcastPipeline(Generic[S]):
    """Transcoder and presentation of one broadcast: its media sink and its transcoder's events."""

    def __init__(self, owner: LivePipeline[S], broadcast: Broadcast) -> None:
        self._owner = owner
        self.broadcast = broadcast
        self.profile: StreamProfile = owner.profile_for(broadcast)
        # The hub reads it when it watches the active input for a standby.
        broadcast.failover_after = self.profile.fallback.failover_after
        self.low_latency = broadcast.policy.low_latency
        # Fixed for the broadcast: a PATCH while live applies from the next one.
        self.webrtc_playback = broadcast.policy.webrtc_playback
        self.presentation: Presentation | None = None
        self._retired: Presentation | None = None  # ended, still served (see `served`)
        self._retired_until = 0.0  # wall clock
        self.plan: LadderPlan | None = None  # the broadcast's ladder, kept across publishers
        self.transcoder: Transcoder | None = None
        self._run_number = 0  # events of an older transcoder are stale
        self.last_progress: EncodeProgress | None = None
        self.webrtc: WebRtcRendition | None = None
        self.webrtc_sink: S | None = None  # made once per broadcast, kept across restarts
        self.webrtc_fragments = 0
        self._probe: SourceProbe | None = SourceProbe()
        self._continuation_asked: float | None = None  # when the source was first known
        self._continuation_late = False
        self._taps: list[RenditionTap] = []  # outside readers of a rendition's output
        # A new input spliced on by the hub, held until its first keyframe (`switch`).
        self._switch: InputSwitch | None = None
        self._video_config: MediaTag | None = None  # the last one the transcoder got
        self._last_sound_ts: int | None = None  # the timeline's last audio frame
        self._sound_stopped = False  # the ladder dropped its audio once (`_sound_changed`)
        self._audio_config: MediaTag | None = None  # likewise
        self._stop_soon: asyncio.Handle | None = None  # see `publisher_lost`
        self.spliced_inputs = 0  # inputs taken over by the running transcoder

    @property
    def stream_id(self) -> str:
        return self.broadcast.stream_id

    @property
    def served(self) -> Presentation | None:
        """What the origin serves under the playback ids.

        An ended presentation stays until its successor's ladder is complete and every
        player has had time to reload its playlists once and see their end: the
        successor answers at the same URLs with unrelated media sequence numbers.
        """
        current, retired = self.presentation, self._retired
        if retired is not None:
            if current is None or not current.complete or self._owner.clock() < self._retired_until:
                return retired
            self._retired = None
        return current

    # MediaSink ------------------------------------------------------------------------

    def push(self, tag: MediaTag) -> None:
        switch = self._switch
        if switch is not None:
            decision = switch.push(tag)
            if decision is not None:
                self._switch = None
                self._switched(decision)
            return
        probe = self._probe
        if probe is None:
            if self.transcoder is not None:
                kind = classify(tag)
                if self._sound_changed(tag, kind):
                    return
                self._note_config(tag, kind)
                self.transcoder.push(tag)
                presentation = self.presentation
                meter = self.broadcast.meter
                if presentation is not None and meter.captions and (
                        not presentation.captions
                        or not meter.caption_channels <= presentation.caption_channels):
                    if not presentation.captions:
                        self.transcoder.captions_began()
                    presentation.offer_captions(meter.caption_channels)
            return
        source = probe.push(tag, self.broadcast.meter)
        if source is not None and not self._awaiting_continuation():
            self._probe = None
            self._source_known(source, list(probe.tags))

    def _awaiting_continuation(self) -> bool:
        """Whether the first presentation waits (holding its tags in the probe) for the
        cluster to say where another node left this broadcast off, so that it continues
        that node's numbers instead of numbering from the clock. At most
        `CONTINUATION_WAIT` seconds from when the source was known; each tag asks again."""
        pending = self._owner.continuation_pending
        if self.presentation is not None or pending is None or not pending(self.broadcast):
            return False
        now = self._owner.clock()
        if self._continuation_asked is None:
            self._continuation_asked = now
        if now - self._continuation_asked < CONTINUATION_WAIT:
            return True
        if not self._continuation_late:
            self._continuation_late = True
            log.warning("broadcast registry did not answer within %.0f s stream_id=%s: "
                        "numbering from the clock", CONTINUATION_WAIT, self.stream_id)
        return False

    # Lifecycle ------------------------------------------------------------------------

    def _source_known(self, source: SourceInfo, backlog: list[MediaTag]) -> None:
        plan, presentation = self.plan, self.presentation
        if plan is None or presentation is None:
            self._start_presentation(source, backlog)
            return
        try:
            rejoined = rejoin_plan(plan, source)
        except RejoinError as exc:
            # Players cannot follow: end their playlists so they load the broadcast anew.
            self._owner.warn(
                self.broadcast,
                "presentation_restarted",
                f"{exc}; the playlists end (EXT-X-ENDLIST) and a new presentation starts",
                reason=str(exc),
            )
            presentation.end()
            self._retired, self.presentation, self.plan = presentation, None, None
            targets = [w.target_duration for w in presentation.renditions.values()]
            hold = _RETIRED_TARGETS * max(targets, default=1)
            self._retired_until = self._owner.clock() + hold
            # The rejoin probe answered before the frame rate was known: settle it now.
            probe = SourceProbe()
            for tag in backlog:
                probe.push(tag, self.broadcast.meter)
            settled = probe.source(self.broadcast.meter)
            if settled is None:
                self._probe = probe
            else:
                self._start_presentation(settled, backlog)
            return
        log.info(
            "publisher rejoined the ladder stream_id=%s source=%dx%d@%.2f %s renditions=%s",
            self.stream_id,
            source.width,
            source.height,
            source.frame_rate,
            source.video_codec,
            ",".join(rejoined.names),
        )
        self.plan = rejoined
        presentation.mark_discontinuity()
        self._sync_renditions(presentation, rejoined)
        self._run(rejoined, backlog)

    def _start_presentation(self, source: SourceInfo, backlog: list[MediaTag]) -> None:
        latency_mode: Literal["low", "standard"] = "low" if self.low_latency else "standard"
        try:
            plan = plan_ladder(self.profile, source, latency_mode)
        except Exception as exc:
            self._owner.warn(self.broadcast, "ladder_failed", f"cannot plan the ladder: {exc}")
            return
        self.plan = plan
        playback_ids = self.broadcast.policy.playback_ids
        presentation = Presentation(
            playback_ids[0].id if playback_ids else self.broadcast.id,
            low_latency=self.low_latency,
            part_target=plan.part_target,
            clock=self._owner.clock,
            continues=(self._owner.continuation(self.broadcast)
                       if self._owner.continuation is not None else None),
            # Every audio part is independent: segments are cut at the ladder's GOP length.
            min_segment=plan.gop_duration if plan.audio_only else 0.0,
        )
        self.presentation = presentation
        # One recording per presentation: a presentation that had to restart (another
        # track set or passthrough codec) ends its recording and this one starts the next.
        record = self._owner.recording_observer
        observer = record(self.broadcast) if record is not None else None
        if observer is not None:
            presentation.observe(observer)
            # A DVR window reaches past memory into the recording: only when recording.
            presentation.dvr_window = self.broadcast.policy.dvr_window
        if self.broadcast.meter.captions:
            presentation.offer_captions(self.broadcast.meter.caption_channels)
        self._sync_renditions(presentation, plan)
        self._owner._publish(self)
        self._run(plan, backlog)
        self._owner._prepare_slate(self)

    def slate_spec(self) -> SlateSpec | None:
        """The slate this broadcast would show now: its source's size and frame rate, the
        ladder's GOP and audio rate; None when its profile wants none or no ladder runs."""
        plan, fallback = self.plan, self.profile.fallback
        if plan is None or not fallback.slate or plan.audio_only:
            return None  # (a slate is a picture: an audio-only broadcast waits without one)
        source = plan.source
        rate = source.frame_rate if 1 <= source.frame_rate <= 240 else 30.0
        try:
            return SlateSpec(
                width=max(16, min(source.width, 7680)),
                height=max(16, min(source.height, 4320)),
                frame_rate=rate,
                gop_frames=max(1, min(2400, round(plan.gop_duration * rate))),
                sample_rate=self.profile.audio.sample_rate if plan.has_audio else 0,
                image=fallback.slate_image,
            )
        except ValueError as exc:
            log.warning("no slate for stream_id=%s: %s", self.stream_id, exc)
            return None

    def _sync_renditions(self, presentation: Presentation, plan: LadderPlan) -> None:
        wanted = plan.names
        for name in list(presentation.renditions):
            if name not in wanted:
                presentation.remove_rendition(name)
        for rendition in plan.renditions:
            presentation.resume_rendition(rendition.name)  # a fresh transcoder encodes it
            if rendition.name not in presentation.renditions:
                presentation.add_rendition(
                    rendition.name,
                    bandwidth=rendition.bandwidth,
                    average_bandwidth=rendition.average_bandwidth,
                    frame_rate=rendition.frame_rate,
                    estimated_bandwidth=rendition.passthrough,
                )

    def _run(self, plan: LadderPlan, backlog: list[MediaTag]) -> None:
        webrtc: WebRtcRendition | None = None
        make_sink = self._owner.webrtc_sink_factory
        if make_sink is not None and self.webrtc_playback and plan.audio_only:
            log.info("no WebRTC output for an audio-only broadcast stream_id=%s",
                     self.stream_id)
        elif make_sink is not None and self.webrtc_playback:
            webrtc = WebRtcRendition.for_plan(plan)
            if self.webrtc_sink is None:
                self.webrtc_sink = make_sink(self.stream_id)
        self.webrtc = webrtc
        self._run_number += 1
        transcoder = Transcoder(
            ffmpeg=self._owner.ffmpeg,
            plan=plan,
            events=_RunEvents(self, self._run_number),
            stream_id=self.stream_id,
            capabilities=self._owner.capabilities,
            webrtc=webrtc,
            from_publisher=lambda: not self.broadcast.on_slate,
            captions=lambda: self.broadcast.meter.captions,
        )
        self.transcoder = transcoder
        source = plan.source
        log.info(
            "transcoder starting stream_id=%s source=%s renditions=%s",
            self.stream_id,
            "audio-only" if plan.audio_only
            else f"{source.width}x{source.height}@{source.frame_rate:.2f}",
            ",".join(plan.names),
        )
        self._owner._spawn(transcoder.start(), f"transcoder-start-{self.stream_id}")
        for tag in backlog:
            self._note_config(tag, classify(tag))
            transcoder.push(tag)

    def _sound_changed(self, tag: MediaTag, kind: TagKind) -> bool:
        """The source's sound began or stopped while the ladder runs: its tracks change, so
        the presentation restarts (see `rejoin_plan`) for the same publisher, whose
        configuration is given to the new probe again (it sends it once); this tag is the
        probe's next. True when it did.

        Sound that begins where the ladder was planned without it (none had come by the
        time the first picture settled the ladder) is taken. Sound that stops is filled with
        silence by the transcoder's input where it writes that codec's silence (AAC with an
        LC core, MPEG audio, Opus, AC-3, E-AC-3, FLAC: `flv_silence`); other sound that
        stops for `SOUND_GAP_MS` of picture would have ffmpeg write the picture alone (each part a
        second late, waiting to interleave) and MSE players freeze where the buffered sound
        ends: the ladder goes on without it. Once a broadcast: a source whose sound comes
        and goes is otherwise restarted again and again.
        """
        plan = self.plan
        if plan is None or plan.audio_only:
            return False
        if kind is TagKind.AUDIO:
            if plan.has_audio:
                self._last_sound_ts = tag.timestamp
                return False
            change = "began after its ladder started without it"
        elif (kind is TagKind.VIDEO or kind is TagKind.KEYFRAME) and plan.has_audio:
            last = self._last_sound_ts
            if (self._sound_stopped or last is None
                    or not ts_before((last + SOUND_GAP_MS) & 0xFFFFFFFF, tag.timestamp)):
                return False
            transcoder = self.transcoder
            if transcoder is not None and transcoder.fills_silence:
                return False  # its input fills the gap with silence (`FlvInput`)
            self._sound_stopped = True
            change = "stopped while its picture goes on"
        else:
            return False
        log.info("the source's sound %s stream_id=%s", change, self.stream_id)
        self._restart_for_new_input()
        meter = self.broadcast.meter
        sound = meter.audio_sequence_header if kind is TagKind.AUDIO else None
        for header in (meter.metadata, meter.video_sequence_header, sound):
            if header is not None:
                self.push(header)
        self.push(tag)
        return True

    def _note_config(self, tag: MediaTag, kind: TagKind) -> None:
        """Keep the codec configurations the transcoder was last given."""
        if kind is TagKind.VIDEO_CONFIG:
            self._video_config = tag
        elif kind is TagKind.AUDIO_CONFIG:
            self._audio_config = tag

    def publisher_resumed(self) -> None:
        if self._stop_soon is not None:
            self._stop_soon.cancel()
            self._stop_soon = None
        plan = self.plan
        if (self.broadcast.splice.continuing and plan is not None
                and self.transcoder is not None and self._probe is None):
            # The hub continues the timeline (failover, slate on or off): the running
            # transcoder takes the new input, unless its first keyframe says it cannot.
            self._switch = InputSwitch(plan, self._video_config, self._audio_config,
                                       gated=self.transcoder.gated_rungs,
                                       fills_silence=self.transcoder.fills_silence)
            return
        self._switch = None
        # A returning publisher restarts its timestamps and may change its encoder
        # settings: identify the source again and start a fresh timeline. It sends its
        # own metadata and codec configuration first (every ingest does), so its
        # predecessor's are not replayed: they would describe another picture.
        self._restart_for_new_input()

    def publisher_lost(self) -> None:
        # A takeover (the standby, the slate) resumes in the same call: the transcoder
        # keeps running for it. Otherwise it stops once this call is over.
        self._switch = None
        if self._stop_soon is None and self.transcoder is not None:
            self._stop_soon = asyncio.get_running_loop().call_soon(self._stop_after_loss)

    def _stop_after_loss(self) -> None:
        self._stop_soon = None
        self._stop_transcoder()

    def _restart_for_new_input(self) -> None:
        self._stop_transcoder()
        self._last_sound_ts = None
        plan = self.plan
        self._probe = SourceProbe(
            rejoin=plan is not None, expect_audio=plan is not None and plan.has_audio
        )

    def _switched(self, decision: SwitchDecision) -> None:
        """The new input's first keyframe came: splice it on, or restart for it."""
        if decision.splice and self.transcoder is not None:
            self.spliced_inputs += 1
            if decision.reconfigures:
                self.transcoder.input_reconfigured()
            if decision.silent:
                self.transcoder.sound_gone()
            log.info("input spliced into the running transcoder stream_id=%s held_tags=%d",
                     self.stream_id, len(decision.tags))
            for tag in decision.tags:
                self.push(tag)
            return
        self._owner.warn(
            self.broadcast, "transcoder_restarted_for_input",
            f"{decision.reason}: the transcoder restarts for the new input (one discontinuity)",
            reason=decision.reason,
        )
        self._restart_for_new_input()
        for tag in decision.tags:
            self.push(tag)

    def end(self) -> None:
        if self._stop_soon is not None:
            self._stop_soon.cancel()
            self._stop_soon = None
        self._stop_transcoder()
        for presentation in (self._retired, self.presentation):
            if presentation is not None:
                presentation.end()
        if self.webrtc_sink is not None:
            self.webrtc_sink.close()

    def _stop_transcoder(self) -> None:
        transcoder, self.transcoder = self.transcoder, None
        if transcoder is not None:
            self._owner._spawn(transcoder.stop(), f"transcoder-stop-{self.stream_id}")

    def is_current(self, run: int) -> bool:
        """Whether transcoder run `run` is the latest one (an older one may still flush)."""
        return run == self._run_number

    def facts(self) -> PipelineFacts:
        webrtc = None
        if self.webrtc is not None:
            w = self.webrtc
            webrtc = WebRtcOutputFacts(w.width, w.height, w.frame_rate_expr, self.webrtc_fragments)
        progress = self.last_progress
        return PipelineFacts(
            profile=f"{self.profile.name}@{self.profile.version}",
            renditions=self.plan.names if self.plan is not None else (),
            latency_mode="low" if self.low_latency else "standard",
            encoder=EncoderFacts.from_progress(progress) if progress is not None else None,
            transcoder=self.transcoder.stats if self.transcoder is not None else None,
            webrtc=webrtc,
        )

    def apply_profile(self, profile: StreamProfile) -> tuple[str, ...] | None:
        """A forced profile change on the live broadcast, applied now: the transcoder
        restarts once with the new ladder; renditions that stay keep their media playlists
        (a discontinuity, no 404), a removed one goes on as gaps (EXT-X-GAP) until the
        broadcast ends and leaves the multivariant playlist for new sessions, as a rung the
        encoder gave up does. Returns the renditions removed; None when it cannot apply
        live (no ladder yet: the source probe plans with it; another GOP or part length:
        players could not follow, so it waits for the next broadcast)."""
        previous, self.profile = self.profile, profile
        plan, presentation = self.plan, self.presentation
        if plan is None or presentation is None or self._probe is not None:
            return None
        mode: Literal["low", "standard"] = "low" if self.low_latency else "standard"
        try:
            new = plan_ladder(profile, plan.source, mode)
        except Exception as exc:
            self.profile = previous
            self._owner.warn(self.broadcast, "ladder_failed",
                             f"cannot plan the new profile's ladder: {exc}")
            return None
        if (new.gop_duration, new.part_target) != (plan.gop_duration, plan.part_target):
            self.profile = previous
            return None
        removed = tuple(n for n in presentation.renditions if n not in new.names)
        self._stop_transcoder()
        self.plan = new
        for name in removed:
            presentation.suspend_rendition(name)
        presentation.mark_discontinuity()
        for rendition in new.renditions:
            presentation.resume_rendition(rendition.name)
            if rendition.name not in presentation.renditions:
                presentation.add_rendition(
                    rendition.name, bandwidth=rendition.bandwidth,
                    average_bandwidth=rendition.average_bandwidth,
                    frame_rate=rendition.frame_rate, estimated_bandwidth=rendition.passthrough)
        self._run(new, [])
        # The new transcoder starts at the publisher's next keyframe, after its headers.
        self.broadcast.replay_headers(self)
        log.info("profile applied live stream_id=%s profile=%s renditions=%s removed=%s",
                 self.stream_id, profile.label, ",".join(new.names), ",".join(removed))
        return removed

    def tap(self, tap: RenditionTap) -> None:
        """`tap` gets its rendition's init segments (the current one at once) and fragments."""
        self._taps.append(tap)
        presentation = self.presentation
        window = presentation.renditions.get(tap.rendition) if presentation else None
        if window is not None and window.init is not None:
            tap.on_init(window.init)

    def untap(self, tap: RenditionTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    # TranscoderEvents -------------------------------------------------------------------

    def on_init(self, rendition: str, init: InitSegment) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self.webrtc_sink is not None:
                self.webrtc_sink.on_init(init)
            return
        presentation = self.presentation
        window = presentation.renditions.get(rendition) if presentation else None
        if window is not None:
            window.set_init(init)
        for tap in self._taps:
            if tap.rendition == rendition:
                tap.on_init(init)

    def on_fragment(self, rendition: str, fragment: Fragment, origin: float | None) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self.webrtc_sink is not None:
                self.webrtc_fragments += 1
                self.webrtc_sink.on_fragment(fragment)
            return
        if self.presentation is not None:
            self.presentation.add_fragment(rendition, fragment, origin=origin)
        for tap in self._taps:
            if tap.rendition == rendition:
                tap.on_fragment(fragment)

    def on_restart(self, attempt: int, reason: str) -> None:
        if self.presentation is not None:
            self.presentation.mark_discontinuity()
        self._owner.warn(
            self.broadcast,
            "transcoder_restarted",
            f"the encoder stopped ({reason}) and was restarted",
            attempt=attempt,
            reason=reason,
        )

    def on_rendition_dropped(self, rendition: str, reason: str) -> None:
        # Players may hold its media playlist: it goes on, with its media marked as gaps.
        if self.presentation is not None:
            self.presentation.suspend_rendition(rendition)

    def on_rendition_restored(self, rendition: str) -> None:
        if self.presentation is not None:
            self.presentation.resume_rendition(rendition)

    def on_progress(self, progress: EncodeProgress) -> None:
        self.last_progress = progress

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None:
        self._owner.warn(self.broadcast, code, message, **data)


class _RunEvents(Generic[S]):
    """One transcoder's events, passed on while it is the broadcast's latest.

    A stopped ffmpeg flushes its last fragments for a moment; once a returning
    publisher's transcoder has started they would land on the new timeline.
    """

    def __init__(self, pipeline: BroadcastPipeline[S], run: int) -> None:
        self._pipeline = pipeline
        self._run = run

    def on_init(self, rendition: str, init: InitSegment) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_init(rendition, init)

    def on_fragment(self, rendition: str, fragment: Fragment, origin: float | None) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_fragment(rendition, fragment, origin)

    def on_restart(self, attempt: int, reason: str) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_restart(attempt, reason)

    def on_rendition_dropped(self, rendition: str, reason: str) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_rendition_dropped(rendition, reason)

    def on_rendition_restored(self, rendition: str) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_rendition_restored(rendition)

    def on_progress(self, progress: EncodeProgress) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_progress(progress)

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None:
        if self._pipeline.is_current(self._run):
            self._pipeline.on_warning(code, message, data)


class LivePipeline(Generic[S]):
    """Runs a `BroadcastPipeline` per broadcast and serves their presentations by playback id.

    `webrtc_sink`, when given, lets streams with `webrtc_playback` play over WHEP: it
    makes the sink of each such broadcast's WebRTC-safe output, and `webrtc_feed`
    finds it by playback id. Other broadcasts get no extra output.
    `recording`, when given, is asked once per presentation for an observer of its
    segments (None: the broadcast is not recorded).
    """

    def __init__(
        self,
        *,
        ffmpeg: str,
        bus: EventBus,
        clock: WallClock,
        profiles_dirs: Iterable[Path] = (),
        ended_ttl: float = 60.0,
        capabilities: EncoderCapabilities | None = None,
        webrtc_sink: Callable[[str], S] | None = None,
        recording: Callable[[Broadcast], SegmentObserver | None] | None = None,
        slates: SlateCache | None = None,
        continuation: Callable[[Broadcast], Continuation | None] | None = None,
        continuation_pending: Callable[[Broadcast], bool] | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        # Asked as each presentation starts: where another node left the broadcast off
        # (a cluster's broadcast registry), None to number it from the clock; and whether
        # that answer is still coming (the first presentation waits for it a little).
        self.continuation = continuation
        self.continuation_pending = continuation_pending
        self.capabilities = capabilities
        self.clock = clock
        self.webrtc_sink_factory = webrtc_sink
        self.recording_observer = recording
        self.slates = slates  # None: no broadcast gets a slate
        self._bus = bus
        self._profiles_dirs = tuple(profiles_dirs)
        self._ended_ttl = ended_ttl
        self._pipelines: dict[str, BroadcastPipeline[S]] = {}  # by broadcast id
        self._by_playback_id: dict[str, BroadcastPipeline[S]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def webrtc_playback(self) -> bool:
        """Whether broadcasts of streams with `webrtc_playback` get the WebRTC-safe output."""
        return self.webrtc_sink_factory is not None

    def profile_for(self, broadcast: Broadcast) -> StreamProfile:
        """The broadcast's profile, fixed for its life: the pinned version's published TOML
        (a later version, or an edited file, does not reach a live broadcast)."""
        policy = broadcast.policy
        try:
            if policy.profile_document:
                return parse_profile(policy.profile_document, source=policy.profile)
            return load_profile(policy.profile.partition("@")[0], extra_dirs=self._profiles_dirs)
        except Exception as exc:
            self.warn(
                broadcast,
                "unknown_profile",
                f"profile {broadcast.policy.profile!r} could not be loaded ({exc}); "
                "using the default profile",
            )
            return load_profile("default")

    # BroadcastObserver -----------------------------------------------------------------

    def broadcast_started(self, broadcast: Broadcast) -> None:
        pipeline = BroadcastPipeline(self, broadcast)
        self._pipelines[broadcast.id] = pipeline
        broadcast.add_sink(pipeline)

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        pipeline = self._pipelines.get(broadcast.id)
        if pipeline is not None:
            pipeline.publisher_resumed()

    def publisher_lost(self, broadcast: Broadcast) -> None:
        pipeline = self._pipelines.get(broadcast.id)
        if pipeline is not None:
            pipeline.publisher_lost()

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        pipeline = self._pipelines.pop(broadcast.id, None)
        if pipeline is None:
            return
        pipeline.end()
        loop = asyncio.get_running_loop()
        loop.call_later(self._ended_ttl, self._unpublish, pipeline)

    # SlateSource -----------------------------------------------------------------------

    def slate(self, broadcast: Broadcast, push: Callable[[MediaTag], None]) -> SlateFeed | None:
        pipeline = self._pipelines.get(broadcast.id)
        spec = pipeline.slate_spec() if pipeline is not None else None
        if self.slates is None or spec is None:
            return None

        def failed(reason: str) -> None:
            self.warn(broadcast, "slate_failed", f"the slate cannot be shown: {reason}")

        return SlateRun(self.slates, spec, push, on_error=failed)

    def _prepare_slate(self, pipeline: BroadcastPipeline[S]) -> None:
        """Make the broadcast's slate now, in the background, so it is ready at once."""
        spec = pipeline.slate_spec()
        cache = self.slates
        if cache is None or spec is None:
            return

        async def prepare() -> None:
            try:
                await cache.clip(spec)
            except Exception as exc:
                log.warning("slate not prepared stream_id=%s: %s", pipeline.stream_id, exc)

        self._spawn(prepare(), f"slate-prepare-{pipeline.stream_id}")

    # PresentationDirectory (used by the origin) ----------------------------------------

    def presentation(self, playback_id: str) -> Presentation | None:
        pipeline = self._by_playback_id.get(playback_id)
        return pipeline.served if pipeline is not None else None

    def webrtc_feed(self, playback_id: str) -> S | None:
        """The WebRTC output's sink of the live broadcast under `playback_id`, if any."""
        pipeline = self._by_playback_id.get(playback_id)
        if pipeline is None or pipeline not in self._pipelines.values():
            return None
        return pipeline.webrtc_sink

    def for_stream(self, stream_id: str) -> BroadcastPipeline[S] | None:
        """The pipeline of the stream's live broadcast."""
        for pipeline in self._pipelines.values():
            if pipeline.stream_id == stream_id:
                return pipeline
        return None

    def apply_profile(self, stream_id: str, profile: StreamProfile) -> tuple[str, ...] | None:
        """Apply a forced profile change to the stream's live broadcast (see
        `BroadcastPipeline.apply_profile`); None: not applied live."""
        pipeline = self.for_stream(stream_id)
        return pipeline.apply_profile(profile) if pipeline is not None else None

    def tap_rendition(self, stream_id: str, tap: RenditionTap) -> bool:
        """Give `tap` the output of its rendition in the stream's live broadcast (False:
        the stream has none)."""
        pipeline = self.for_stream(stream_id)
        if pipeline is None:
            return False
        pipeline.tap(tap)
        return True

    def untap_rendition(self, stream_id: str, tap: RenditionTap) -> None:
        for pipeline in self._pipelines.values():
            if pipeline.stream_id == stream_id:
                pipeline.untap(tap)

    def facts(self, stream_id: str) -> PipelineFacts | None:
        pipeline = self.for_stream(stream_id)
        return pipeline.facts() if pipeline is not None else None

    async def close(self) -> None:
        for pipeline in list(self._pipelines.values()):
            pipeline.end()
        self._pipelines.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    # Internals ------------------------------------------------------------------------

    def _publish(self, pipeline: BroadcastPipeline[S]) -> None:
        for pid in pipeline.broadcast.policy.playback_ids:
            previous = self._by_playback_id.get(pid.id)
            if previous is not None and previous is not pipeline:
                previous.end()
            self._by_playback_id[pid.id] = pipeline

    def _unpublish(self, pipeline: BroadcastPipeline[S]) -> None:
        for pid, current in list(self._by_playback_id.items()):
            if current is pipeline:
                del self._by_playback_id[pid]

    def warn(self, broadcast: Broadcast, code: str, message: str, **data: Any) -> None:
        log.warning(
            "stream warning stream_id=%s code=%s message=%s", broadcast.stream_id, code, message
        )
        self._bus.publish(
            Event(
                type=EventType.LIVE_STREAM_WARNING,
                stream_id=broadcast.stream_id,
                broadcast_id=broadcast.id,
                data={"code": code, "message": message, **data},
            )
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pipeline task failed name=%s error=%r", task.get_name(), task.exception())
