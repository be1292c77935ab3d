"""The live pipeline: each broadcast's media → one supervised transcoder → a presentation (media).

`LivePipeline` observes the broadcast hub. When a broadcast starts it holds the
first tags until the source is known (`source`), plans the ladder from the
stream's profile, starts the transcoder, and publishes a `Presentation` under
every playback id of the stream, which the origin serves. With WHEP playback the
transcoder writes one more, WebRTC-safe output, handed to a sink the composition
root's factory makes per broadcast (`output.OutputSink`). Publisher reconnects
restart the transcoder on a fresh timeline and mark a discontinuity; the end of a
broadcast ends the playlists (EXT-X-ENDLIST), which stay served for a while so
players see the end, and closes the sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from golive.core import Event, EventBus, EventType
from golive.formats import Fragment, InitSegment, MediaTag
from golive.media.command import WEBRTC_OUTPUT, WebRtcRendition
from golive.media.facts import EncoderFacts, PipelineFacts, WebRtcOutputFacts
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.output import OutputSink
from golive.media.profiles import StreamProfile, load_profile
from golive.media.progress import EncodeProgress
from golive.media.source import SourceProbe
from golive.media.transcoder import EncoderCapabilities, Transcoder
from golive.packaging import Presentation, WallClock
from golive.stream import Broadcast

__all__ = ["BroadcastPipeline", "LivePipeline"]

log = logging.getLogger(__name__)

S = TypeVar("S", bound=OutputSink)
"""The WebRTC output's sink type, chosen by the composition root."""


class BroadcastPipeline(Generic[S]):
    """Transcoder and presentation of one broadcast: its media sink and its transcoder's events."""

    def __init__(self, owner: LivePipeline[S], broadcast: Broadcast) -> None:
        self._owner = owner
        self.broadcast = broadcast
        self.profile: StreamProfile = owner.profile_for(broadcast)
        self.low_latency = broadcast.policy.low_latency
        # Fixed for the broadcast: a PATCH while live applies from the next one.
        self.webrtc_playback = broadcast.policy.webrtc_playback
        self.presentation: Presentation | None = None
        self.plan: LadderPlan | None = None
        self.transcoder: Transcoder | None = None
        self.last_progress: EncodeProgress | None = None
        self.webrtc: WebRtcRendition | None = None
        self.webrtc_sink: S | None = None  # made once per broadcast, kept across restarts
        self.webrtc_fragments = 0
        self._probe: SourceProbe | None = SourceProbe()

    @property
    def stream_id(self) -> str:
        return self.broadcast.stream_id

    # MediaSink ------------------------------------------------------------------------

    def push(self, tag: MediaTag) -> None:
        probe = self._probe
        if probe is None:
            if self.transcoder is not None:
                self.transcoder.push(tag)
            return
        source = probe.push(tag, self.broadcast.meter)
        if source is not None:
            self._probe = None
            self._start(source, list(probe.tags))

    # Lifecycle ------------------------------------------------------------------------

    def _start(self, source: SourceInfo, backlog: list[MediaTag]) -> None:
        latency_mode: Literal["low", "standard"] = "low" if self.low_latency else "standard"
        try:
            plan = plan_ladder(self.profile, source, latency_mode)
        except Exception as exc:
            self._owner.warn(self.broadcast, "ladder_failed", f"cannot plan the ladder: {exc}")
            return
        self.plan = plan
        presentation = self.presentation
        if presentation is None:
            playback_ids = self.broadcast.policy.playback_ids
            presentation = Presentation(
                playback_ids[0].id if playback_ids else self.broadcast.id,
                low_latency=self.low_latency,
                part_target=plan.part_target,
                clock=self._owner.clock,
            )
            self.presentation = presentation
            self._owner._publish(self)
        else:
            presentation.mark_discontinuity()
        wanted = [r.name for r in plan.renditions]
        for name in list(presentation.renditions):
            if name not in wanted:
                presentation.remove_rendition(name)
        for rendition in plan.renditions:
            if rendition.name not in presentation.renditions:
                presentation.add_rendition(
                    rendition.name,
                    bandwidth=rendition.bandwidth,
                    average_bandwidth=rendition.average_bandwidth,
                    frame_rate=rendition.frame_rate,
                )
        webrtc: WebRtcRendition | None = None
        make_sink = self._owner.webrtc_sink_factory
        if make_sink is not None and self.webrtc_playback:
            webrtc = WebRtcRendition.for_plan(plan)
            if self.webrtc_sink is None:
                self.webrtc_sink = make_sink(self.stream_id)
        self.webrtc = webrtc
        transcoder = Transcoder(
            ffmpeg=self._owner.ffmpeg,
            plan=plan,
            events=self,
            stream_id=self.stream_id,
            capabilities=self._owner.capabilities,
            webrtc=webrtc,
        )
        self.transcoder = transcoder
        log.info(
            "transcoder starting stream_id=%s source=%dx%d@%.2f renditions=%s",
            self.stream_id,
            source.width,
            source.height,
            source.frame_rate,
            ",".join(wanted),
        )
        self._owner._spawn(transcoder.start(), f"transcoder-start-{self.stream_id}")
        for tag in backlog:
            transcoder.push(tag)

    def publisher_resumed(self) -> None:
        # A returning publisher restarts its timestamps and may change its encoder
        # settings: identify the source again and start a fresh timeline.
        self._stop_transcoder()
        self._probe = SourceProbe()
        self.broadcast.replay_headers(self)

    def publisher_lost(self) -> None:
        self._stop_transcoder()

    def end(self) -> None:
        self._stop_transcoder()
        if self.presentation is not None:
            self.presentation.end()
        if self.webrtc_sink is not None:
            self.webrtc_sink.close()

    def _stop_transcoder(self) -> None:
        transcoder, self.transcoder = self.transcoder, None
        if transcoder is not None:
            self._owner._spawn(transcoder.stop(), f"transcoder-stop-{self.stream_id}")

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

    # TranscoderEvents -------------------------------------------------------------------

    def on_init(self, rendition: str, init: InitSegment) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self.webrtc_sink is not None:
                self.webrtc_sink.on_init(init)
            return
        window = self.presentation.renditions.get(rendition) if self.presentation else None
        if window is not None:
            window.set_init(init)

    def on_fragment(self, rendition: str, fragment: Fragment) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self.webrtc_sink is not None:
                self.webrtc_fragments += 1
                self.webrtc_sink.on_fragment(fragment)
            return
        if self.presentation is not None:
            self.presentation.add_fragment(rendition, fragment)

    def on_restart(self, attempt: int, reason: str) -> None:
        if self.presentation is not None:
            self.presentation.mark_discontinuity()
        self._owner.warn(
            self.broadcast,
            "transcoder_restarted",
            f"the encoder stopped ({reason}) and was restarted",
            attempt=attempt,
        )

    def on_rendition_dropped(self, rendition: str, reason: str) -> None:
        if self.presentation is not None and rendition in self.presentation.renditions:
            self.presentation.remove_rendition(rendition)

    def on_progress(self, progress: EncodeProgress) -> None:
        self.last_progress = progress

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None:
        self._owner.warn(self.broadcast, code, message, **data)


class LivePipeline(Generic[S]):
    """Runs a `BroadcastPipeline` per broadcast and serves their presentations by playback id.

    `webrtc_sink`, when given, lets streams with `webrtc_playback` play over WHEP: it
    makes the sink of each such broadcast's WebRTC-safe output, and `webrtc_feed`
    finds it by playback id. Other broadcasts get no extra output.
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
    ) -> None:
        self.ffmpeg = ffmpeg
        self.capabilities = capabilities
        self.clock = clock
        self.webrtc_sink_factory = webrtc_sink
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
        try:
            return load_profile(broadcast.policy.profile, extra_dirs=self._profiles_dirs)
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

    # PresentationDirectory (used by the origin) ----------------------------------------

    def presentation(self, playback_id: str) -> Presentation | None:
        pipeline = self._by_playback_id.get(playback_id)
        return pipeline.presentation if pipeline is not None else None

    def webrtc_feed(self, playback_id: str) -> S | None:
        """The WebRTC output's sink of the live broadcast under `playback_id`, if any."""
        pipeline = self._by_playback_id.get(playback_id)
        if pipeline is None or pipeline not in self._pipelines.values():
            return None
        return pipeline.webrtc_sink

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        pipeline = self._by_playback_id.get(playback_id)
        if pipeline is None:
            return True  # the origin answers 404
        for pid in pipeline.broadcast.policy.playback_ids:
            if pid.id == playback_id:
                # Signed playback tokens arrive with the security issue; until then a
                # signed playback id is never served.
                return not pid.signed
        return False

    def for_stream(self, stream_id: str) -> BroadcastPipeline[S] | None:
        """The pipeline of the stream's live broadcast."""
        for pipeline in self._pipelines.values():
            if pipeline.stream_id == stream_id:
                return pipeline
        return None

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
