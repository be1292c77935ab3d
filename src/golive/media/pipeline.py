"""The live pipeline: each broadcast's media → one supervised transcoder → a presentation (media).

`LivePipeline` observes the broadcast hub. When a broadcast starts it buffers the
first tags until the source is known (codec configuration and frame rate), plans
the ladder from the stream's profile, starts the transcoder, and publishes a
`Presentation` under every playback id of the stream, which the origin serves.
Publisher reconnects restart the transcoder on a fresh timeline and mark a
discontinuity; the end of a broadcast ends the playlists (EXT-X-ENDLIST), which
stay served for a while so players see the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from golive.core.events import Event, EventBus, EventType, utcnow
from golive.formats.codecs import CodecError, parse_video_tag
from golive.formats.isobmff import Fragment, InitSegment
from golive.formats.tag import MediaTag, TagType
from golive.media.command import WEBRTC_OUTPUT, WebRtcRendition
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import StreamProfile, load_profile
from golive.media.progress import EncodeProgress
from golive.media.transcoder import EncoderCapabilities, Transcoder
from golive.packaging.presentation import Presentation
from golive.stream import Broadcast

log = logging.getLogger(__name__)

# How long the first tags may be held while the source is identified.
_PROBE_SECONDS = 1.0
_PROBE_MAX_TAGS = 600


@dataclass
class _Probe:
    tags: deque[MediaTag] = field(default_factory=lambda: deque(maxlen=_PROBE_MAX_TAGS))
    first_video_ts: int | None = None
    last_video_ts: int | None = None
    video_frames: int = 0


class BroadcastPipeline:
    """Transcoder and presentation of one broadcast; the broadcast's media sink."""

    def __init__(self, owner: LivePipeline, broadcast: Broadcast) -> None:
        self._owner = owner
        self.broadcast = broadcast
        self.profile: StreamProfile = owner.profile_for(broadcast)
        self.low_latency = broadcast.policy.low_latency
        self.presentation: Presentation | None = None
        self.plan: LadderPlan | None = None
        self.transcoder: Transcoder | None = None
        self.last_progress: EncodeProgress | None = None
        self._probe: _Probe | None = _Probe()
        self._stopping: asyncio.Task[None] | None = None
        self.webrtc_feed: Any = None  # golive.delivery.whep.WebRtcFeed with WHEP playback
        self.webrtc: WebRtcRendition | None = None

    @property
    def stream_id(self) -> str:
        return self.broadcast.stream_id

    # MediaSink ------------------------------------------------------------------------

    def push(self, tag: MediaTag) -> None:
        if self._probe is None:
            if self.transcoder is not None:
                self.transcoder.push(tag)
            return
        probe = self._probe
        probe.tags.append(tag)
        if tag.type is TagType.VIDEO:
            try:
                info = parse_video_tag(tag.body)
            except CodecError:
                return
            if info.is_sequence_header:
                return
            probe.video_frames += 1
            if probe.first_video_ts is None:
                probe.first_video_ts = tag.timestamp
            probe.last_video_ts = tag.timestamp
        self._maybe_start()

    # Lifecycle ------------------------------------------------------------------------

    def _maybe_start(self) -> None:
        probe = self._probe
        assert probe is not None
        facts = self.broadcast.meter.snapshot(0.0)
        span = 0.0
        if probe.first_video_ts is not None and probe.last_video_ts is not None:
            span = (probe.last_video_ts - probe.first_video_ts) / 1000
        have_video = self.broadcast.meter.video_sequence_header is not None and facts.width
        audio_only = probe.first_video_ts is None and len(probe.tags) >= 50
        if not (have_video and (span >= _PROBE_SECONDS or probe.video_frames >= 30)) and not (
            audio_only or len(probe.tags) >= _PROBE_MAX_TAGS
        ):
            return
        frame_rate = facts.declared_frame_rate or 0.0
        if span > 0 and probe.video_frames > 1:
            measured = (probe.video_frames - 1) / span
            if not frame_rate or abs(measured - frame_rate) > 2:
                frame_rate = measured
        source = SourceInfo(
            width=facts.width or 0,
            height=facts.height or 0,
            frame_rate=round(frame_rate or 30.0, 3),
            video_codec=facts.video_codec or "unknown",
            has_audio=self.broadcast.meter.audio_sequence_header is not None
            or facts.audio_codec is not None,
        )
        self._start(source, list(probe.tags))
        self._probe = None

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
            presentation = Presentation(
                self.broadcast.policy.playback_ids[0].id
                if self.broadcast.policy.playback_ids
                else self.broadcast.id,
                low_latency=self.low_latency,
                part_target=plan.part_target,
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
        if self._owner.webrtc_playback:
            from golive.delivery.whep import WebRtcFeed

            webrtc = WebRtcRendition.for_plan(plan)
            if self.webrtc_feed is None:
                self.webrtc_feed = WebRtcFeed(self.stream_id)
        self.webrtc = webrtc
        transcoder = Transcoder(
            ffmpeg=self._owner.ffmpeg,
            plan=plan,
            events=_Events(self),
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
        self._probe = _Probe()
        self.broadcast.replay_headers(self)

    def publisher_lost(self) -> None:
        self._stop_transcoder()

    def end(self) -> None:
        self._stop_transcoder()
        if self.presentation is not None:
            self.presentation.end()
        if self.webrtc_feed is not None:
            self.webrtc_feed.close()

    def _stop_transcoder(self) -> None:
        transcoder, self.transcoder = self.transcoder, None
        if transcoder is not None:
            self._owner._spawn(transcoder.stop(), f"transcoder-stop-{self.stream_id}")

    def facts(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "profile": f"{self.profile.name}@{self.profile.version}",
            "renditions": [r.name for r in self.plan.renditions] if self.plan else [],
            "latency_mode": "low" if self.low_latency else "standard",
        }
        if self.last_progress is not None:
            p = self.last_progress
            result["encoder"] = {
                "speed": p.speed,
                "fps": p.fps,
                "dropped_frames": p.drop_frames,
                "duplicated_frames": p.dup_frames,
            }
        if self.transcoder is not None:
            result["transcoder"] = self.transcoder.stats_dict()
        if self.webrtc is not None:
            w = self.webrtc
            result["webrtc"] = {
                "width": w.width, "height": w.height, "frame_rate": w.frame_rate_expr,
                "video_packets": getattr(self.webrtc_feed, "video_packets", 0),
                "audio_packets": getattr(self.webrtc_feed, "audio_packets", 0),
            }
        return result


class _Events:
    """TranscoderEvents for one broadcast: fragments into the presentation's windows."""

    def __init__(self, pipeline: BroadcastPipeline) -> None:
        self._p = pipeline

    def _window(self, rendition: str) -> Any:
        presentation = self._p.presentation
        if presentation is None:
            return None
        return presentation.renditions.get(rendition)

    def on_init(self, rendition: str, init: InitSegment) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self._p.webrtc_feed is not None:
                self._p.webrtc_feed.on_init(init)
            return
        window = self._window(rendition)
        if window is not None:
            window.set_init(init)

    def on_fragment(self, rendition: str, fragment: Fragment) -> None:
        if rendition == WEBRTC_OUTPUT:
            if self._p.webrtc_feed is not None:
                self._p.webrtc_feed.on_fragment(fragment)
            return
        window = self._window(rendition)
        if window is not None:
            window.add_fragment(fragment, utcnow())

    def on_restart(self, attempt: int, reason: str) -> None:
        if self._p.presentation is not None:
            self._p.presentation.mark_discontinuity()
        self._p._owner.warn(
            self._p.broadcast,
            "transcoder_restarted",
            f"the encoder stopped ({reason}) and was restarted",
            attempt=attempt,
        )

    def on_rendition_dropped(self, rendition: str, reason: str) -> None:
        if self._p.presentation is not None and rendition in self._p.presentation.renditions:
            self._p.presentation.remove_rendition(rendition)

    def on_progress(self, progress: EncodeProgress) -> None:
        self._p.last_progress = progress

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None:
        self._p._owner.warn(self._p.broadcast, code, message, **data)


class LivePipeline:
    """Runs a `BroadcastPipeline` per broadcast and serves their presentations by playback id."""

    def __init__(
        self,
        *,
        ffmpeg: str,
        bus: EventBus,
        profiles_dirs: tuple[Any, ...] = (),
        ended_ttl: float = 60.0,
        capabilities: EncoderCapabilities | None = None,
    ) -> None:
        self.ffmpeg = ffmpeg
        self.capabilities = capabilities
        self._bus = bus
        self._profiles_dirs = profiles_dirs
        self._ended_ttl = ended_ttl
        self._pipelines: dict[str, BroadcastPipeline] = {}  # by broadcast id
        self._by_playback_id: dict[str, BroadcastPipeline] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # WHEP playback: one extra WebRTC-safe output per broadcast (set by the app).
        self.webrtc_playback = False

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

    def webrtc_feed(self, playback_id: str) -> Any:
        """The WHEP feed of the live broadcast under `playback_id` (None when there is none)."""
        pipeline = self._by_playback_id.get(playback_id)
        if pipeline is None or pipeline not in self._pipelines.values():
            return None
        return pipeline.webrtc_feed

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

    def facts(self, stream_id: str) -> dict[str, Any] | None:
        for pipeline in self._pipelines.values():
            if pipeline.stream_id == stream_id:
                return pipeline.facts()
        return None

    async def close(self) -> None:
        for pipeline in list(self._pipelines.values()):
            pipeline.end()
        self._pipelines.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    # Internals ------------------------------------------------------------------------

    def _publish(self, pipeline: BroadcastPipeline) -> None:
        for pid in pipeline.broadcast.policy.playback_ids:
            previous = self._by_playback_id.get(pid.id)
            if previous is not None and previous is not pipeline:
                previous.end()
            self._by_playback_id[pid.id] = pipeline

    def _unpublish(self, pipeline: BroadcastPipeline) -> None:
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

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pipeline task failed name=%s error=%r", task.get_name(), task.exception())
