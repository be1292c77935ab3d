"""Simulcast: one broadcast forwarded to outside RTMP(S)/SRT destinations (stage: media).

A `Forwarder` is a `MediaSink` on a broadcast. It keeps its own bounded `FlvInput`
(whole GOPs dropped, and counted, when its target falls behind), and runs one
`ffmpeg -c copy` per attempt that reads that FLV on stdin and publishes it to the
destination URL. A run that ends is retried after `core.backoff` delays. Its state is
`connecting` until ffmpeg has written media to the target, then `live`; a run that ends
makes it `errored` with ffmpeg's last message as the reason until the next attempt.
A destination's failure touches nothing outside its own forwarder.

A `RenditionForwarder` forwards one ladder rendition instead of the source: it taps
that rendition's encoded output (`RenditionTap`: CMAF init and fragments, fMP4 on
ffmpeg's stdin, `-c copy`), so a destination on a rendition costs no encode of its own.
It starts each run on an independent fragment and drops whole GOPs when behind; a new
init (the transcoder restarted) starts a new run.

`check_destination_url` is the SSRF-minded check made before a URL is stored and
again before every attempt: only rtmp, rtmps and srt; hosts that resolve to
non-public addresses only with `allow_private`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from golive.core import Backoff, OutboundRefused, outbound_addresses
from golive.formats import Fragment, InitSegment, MediaTag, TagType
from golive.media.feed import FlvInput, InputFeed
from golive.media.profiles import StreamProfile
from golive.media.source import AUDIO_ONLY_TAGS

__all__ = [
    "DestinationNotAdmitted",
    "DestinationRefused",
    "DestinationState",
    "Forwarder",
    "ForwarderStatus",
    "RenditionForwarder",
    "admit_destination",
    "check_destination_url",
    "ffmpeg_forward_args",
    "mask_secret",
    "push_sample",
    "redact_url",
]

SOURCE = "source"  # a destination that gets the publisher's own media
SCHEMES = {"rtmp": 1935, "rtmps": 443, "srt": None}
MAX_URL_LENGTH = 2048
REASON_LINES = 8  # ffmpeg stderr lines kept for an errored reason


class DestinationRefused(Exception):
    """A destination URL golive will not publish to; the message says why."""


class DestinationState(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    ERRORED = "errored"


def mask_secret(secret: str) -> str:
    """A stream key or passphrase as it may be shown: its last 4 characters at most."""
    if len(secret) <= 8:
        return "*" * len(secret)
    return "*" * (len(secret) - 4) + secret[-4:]


def redact_url(url: str) -> str:
    """`url` with its last path segment (the stream key) and its query masked."""
    base, _, query = url.partition("?")
    head, _, key = base.rpartition("/")
    shown = f"{head}/{mask_secret(key)}" if head.count("/") >= 3 else base
    return shown + ("?" + mask_secret(query) if query else "")


async def check_destination_url(url: str, *, allow_private: bool) -> None:
    """Raise `DestinationRefused` unless `url` is an rtmp/rtmps/srt URL golive may send to."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise DestinationRefused("url contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise DestinationRefused("url must be an absolute rtmp://, rtmps:// or srt:// URL")
    if parts.scheme == "srt":
        if port is None:
            raise DestinationRefused("an srt:// url needs a port")
        mode = dict(parse_qsl(parts.query)).get("mode", "caller")
        if mode != "caller":
            raise DestinationRefused("an srt:// destination is always mode=caller")
    port = port or SCHEMES[parts.scheme] or 0  # srt has a port (checked above)
    host = parts.hostname
    try:
        await outbound_addresses(
            host, port, allow_private=allow_private,
            private_hint="; set destination_allow_private_targets to publish there")
    except OutboundRefused as exc:
        raise DestinationRefused(str(exc)) from None


class DestinationNotAdmitted(Exception):
    """The stream's profile does not admit this destination; `field` names what to change,
    `conflict`: the class is full (not the request's fault)."""

    def __init__(self, field: str | None, message: str, *, conflict: bool = False) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.conflict = conflict


def admit_destination(profile: StreamProfile, url: str, rendition: str | None,
                      others: Sequence[str]) -> str:
    """The rendition a destination of `url` gets under the profile's policy and ladder;
    `rendition`: the one asked for (None: the class's, else the source); `others`: the URLs
    of the stream's other destinations. Raises `DestinationNotAdmitted`."""
    ladder = [r.name for r in profile.renditions]
    policy = profile.destination_class(url) if profile.destinations else None
    if profile.destinations:
        if policy is None:
            allowed = "; ".join(d.describe() for d in profile.destinations)
            raise DestinationNotAdmitted("url", f"profile {profile.label} admits destinations "
                                         f"of these classes only: {allowed}")
        if rendition is not None and rendition != policy.rendition:
            raise DestinationNotAdmitted("rendition", f"destinations of class {policy.name} "
                                         f"get {policy.rendition!r} (profile {profile.label})")
        same = sum(profile.destination_class(other) is policy for other in others)
        if same >= policy.max_count:
            raise DestinationNotAdmitted(
                None, f"the stream already has {same} destination(s) of class {policy.name} "
                f"(max_count {policy.max_count}, profile {profile.label})", conflict=True)
    chosen = rendition or (policy.rendition if policy is not None else SOURCE)
    if chosen != SOURCE and chosen not in ladder:
        raise DestinationNotAdmitted("rendition", f"must be {SOURCE!r} or one of the stream's "
                                     f"ladder ({', '.join(ladder)}), not {chosen!r}")
    return chosen


def ffmpeg_forward_args(ffmpeg: str, url: str, *, realtime: bool = False,
                        input_format: str = "flv", audio_to_aac: bool = False,
                        sound_alone: bool = False) -> list[str]:
    """The ffmpeg command that copies `input_format` (FLV, or fMP4 as "mp4") from stdin to
    `url` (FLV for RTMP, MPEG-TS for SRT); `realtime`: read the input at its own pace (a
    recorded sample, not a live feed). `audio_to_aac`: the audio is encoded to AAC for an
    RTMP target instead of copied (the video is still copied). `sound_alone`: an FLV
    without a picture, probed for its first frames only (ffmpeg's FLV reader cannot know
    that no picture is coming, and would read 5 s of it before writing anything)."""
    srt = url.startswith("srt://")
    codecs = ["-c:v", "copy", "-c:a", "aac", "-b:a", f"{FORWARD_AAC_KBPS}k"] \
        if audio_to_aac and not srt else ["-c", "copy"]
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *(["-analyzeduration", str(_SOUND_PROBE_US)] if sound_alone else []),
        *(["-re"] if realtime else []), "-f", input_format, "-i", "pipe:0",
        "-map", "0", *codecs, "-f", "mpegts" if srt else "flv", url,
    ]


_SOUND_PROBE_US = 200_000  # media an FLV of sound alone is probed for (a few frames)

# RTMP platforms take AAC (or MP3) in legacy FLV audio tags: an SRT publisher's MP2,
# AC-3, E-AC-3 or Opus reaches the source forwarder as Enhanced RTMP audio, which is
# encoded to AAC at this bitrate for an RTMP target (an SRT target gets it as it is).
FORWARD_AAC_KBPS = 160


async def _read_progress(stdout: asyncio.StreamReader, on_media: Callable[[], None]) -> None:
    """ffmpeg's `-progress` lines; `on_media` once it has written media to the target."""
    async for raw in stdout:
        key, _, value = raw.decode("ascii", "replace").strip().partition("=")
        if key == "total_size" and value.isdigit() and int(value) > 0:
            on_media()


async def _read_errors(stderr: asyncio.StreamReader, url: str, lines: deque[str]) -> None:
    async for raw in stderr:
        text = raw.decode("utf-8", "replace").strip()
        if text:  # ffmpeg names the URL in its errors: never show its key
            lines.append(text.replace(url, redact_url(url))[:300])


async def push_sample(ffmpeg: str, url: str, flv: bytes, *, seconds: float,
                      allow_private: bool) -> str | None:
    """Publish the recorded `flv` to `url` at its own pace for up to `seconds`, as a
    forwarder would: None when the target took media and kept the connection that long
    (or to the sample's end), else why not (the target's refusal as ffmpeg reports it,
    the key masked)."""
    try:
        await check_destination_url(url, allow_private=allow_private)
    except DestinationRefused as exc:
        return str(exc)
    try:
        proc = await asyncio.create_subprocess_exec(
            *ffmpeg_forward_args(ffmpeg, url, realtime=True),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"cannot run ffmpeg: {exc}"
    assert proc.stdin and proc.stdout and proc.stderr
    stdin = proc.stdin
    lines: deque[str] = deque(maxlen=REASON_LINES)
    took = asyncio.Event()

    async def write() -> None:
        with contextlib.suppress(ConnectionError):
            stdin.write(flv)
            await stdin.drain()
            stdin.close()

    tasks = [asyncio.create_task(write()),
             asyncio.create_task(_read_progress(proc.stdout, took.set)),
             asyncio.create_task(_read_errors(proc.stderr, url, lines))]
    ended = True
    try:
        try:
            await asyncio.wait_for(proc.wait(), seconds)
        except TimeoutError:
            ended = False
        # What ffmpeg said last arrives just after it exits.
        await asyncio.wait(tasks[1:], timeout=2)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    last = lines[-1] if lines else ""
    if took.is_set() and (not ended or proc.returncode == 0):
        return None
    if not ended:
        return f"no media reached the target in {seconds:g} s" + (f": {last}" if last else "")
    return f"ffmpeg exited with status {proc.returncode}" + (f": {last}" if last else "")


@dataclass(slots=True)
class ForwarderStatus:
    state: DestinationState = DestinationState.CONNECTING
    reason: str | None = None
    attempts: int = 0
    dropped_frames: int = 0
    dropped_bytes: int = 0


class Forwarder:
    """Forwards one broadcast to one destination; a `MediaSink`, never blocks ingest."""

    rendition = SOURCE

    def __init__(
        self,
        url: str,
        *,
        ffmpeg: str,
        queue_bytes: int,
        has_audio: bool,
        allow_private: bool,
        backoff: Backoff,
        on_state: Callable[[ForwarderStatus], None],
    ) -> None:
        self.url = url
        self.ffmpeg = ffmpeg
        self.allow_private = allow_private
        self.backoff = backoff
        self.on_state = on_state
        self.input = FlvInput(limit=queue_bytes, has_audio=has_audio)
        self.status = ForwarderStatus()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._reading: InputFeed | None = None  # the timeline the running ffmpeg reads
        self._new_timeline = False
        self._enhanced_audio = False  # the source's audio is Enhanced RTMP (not AAC/MP3)
        self._run_encodes_audio = False  # the running ffmpeg encodes it to AAC
        self._seen_video = False
        self._audio_alone = 0  # audio tags before any video

    def push(self, tag: MediaTag) -> None:
        if not self._seen_video and self.input.has_video:
            # A source of sound alone (a radio show) has no keyframe to start at: after as
            # many tags as the transcoder's probe takes to say so, its sound starts it.
            if tag.type is TagType.VIDEO:
                self._seen_video = True
            elif tag.type is TagType.AUDIO:
                self._audio_alone += 1
                if self._audio_alone >= AUDIO_ONLY_TAGS:
                    self.input.sound_alone()
        if (tag.type is TagType.AUDIO and tag.body and tag.body[0] >> 4 == 9
                and not self._enhanced_audio):
            self._enhanced_audio = True
            if (self._reading is not None and not self._run_encodes_audio
                    and not self.url.startswith("srt://")):
                self._new_timeline = True  # start again, encoding the audio for RTMP
                self._reading.close()
        if self.input.push(tag).timestamps_went_back and self._reading is not None:
            self._new_timeline = True  # the publisher's clock went back: end this run
            self._reading.close()
        self.status.dropped_frames = self.input.dropped_frames
        self.status.dropped_bytes = self.input.dropped_bytes

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopped = True
        self.input.feed.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set(self, state: DestinationState, reason: str | None) -> None:
        if (state, reason) != (self.status.state, self.status.reason):
            self.status.state, self.status.reason = state, reason
            self.on_state(self.status)

    async def _run(self) -> None:
        while not self._stopped:
            self.status.attempts += 1
            self._set(DestinationState.CONNECTING, None)
            try:
                await check_destination_url(self.url, allow_private=self.allow_private)
                reason = await self._attempt()
            except DestinationRefused as exc:
                reason = str(exc)
            except OSError as exc:  # ffmpeg could not be started
                reason = f"cannot run ffmpeg: {exc}"
            if self._stopped:
                return
            if self._new_timeline:  # not a failure: publish the new timeline at once
                self._new_timeline = False
                continue
            self._set(DestinationState.ERRORED, reason)
            await asyncio.sleep(self.backoff.next_delay())

    def _next_feed(self) -> InputFeed:
        feed = self.input.feed  # tags pushed before start, or a timeline begun by a clock jump
        if feed.closed or feed is self._reading:
            feed = self.input.new_timeline()
        return feed

    def _args(self) -> list[str]:
        self._run_encodes_audio = self._enhanced_audio
        return ffmpeg_forward_args(self.ffmpeg, self.url, audio_to_aac=self._enhanced_audio,
                                   sound_alone=not self.input.has_video)

    async def _attempt(self) -> str:
        """One ffmpeg run on a timeline that starts at a keyframe; returns why it ended.

        ffmpeg starts with the timeline's first bytes, once the source has shown what it
        is (a picture, or sound alone: see `push`)."""
        feed = self._next_feed()
        self._reading = feed
        first = await feed.take()
        if first is None:
            return "the timeline ended before it began"
        proc = await asyncio.create_subprocess_exec(
            *self._args(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
        lines: deque[str] = deque(maxlen=REASON_LINES)

        async def write() -> None:
            chunk: bytes | None = first
            while chunk is not None:
                stdin.write(chunk)
                await stdin.drain()
                chunk = await feed.take()
            stdin.close()  # the timeline ended here: ffmpeg flushes and exits

        def live() -> None:
            self.backoff.reset()
            self._set(DestinationState.LIVE, None)

        tasks = [asyncio.create_task(c) for c in (
            write(), _read_progress(stdout, live), _read_errors(stderr, self.url, lines))]
        try:
            await proc.wait()
        finally:
            feed.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        last = lines[-1] if lines else ""
        return f"ffmpeg exited with status {proc.returncode}" + (f": {last}" if last else "")


class RenditionForwarder(Forwarder):
    """Forwards one ladder rendition's encoded output; a `RenditionTap`, never a sink."""

    def __init__(self, url: str, rendition: str, *, ffmpeg: str, queue_bytes: int,
                 allow_private: bool, backoff: Backoff,
                 on_state: Callable[[ForwarderStatus], None]) -> None:
        super().__init__(url, ffmpeg=ffmpeg, queue_bytes=queue_bytes, has_audio=True,
                         allow_private=allow_private, backoff=backoff, on_state=on_state)
        self._rendition = rendition
        self._queue_bytes = queue_bytes
        self._init: InitSegment | None = None
        self._feed: InputFeed | None = None  # the running ffmpeg's

    @property
    def rendition(self) -> str:  # type: ignore[override]
        return self._rendition

    def push(self, tag: MediaTag) -> None:
        """Not a sink of the broadcast: its media comes from the rendition."""

    def on_init(self, init: InitSegment) -> None:
        new = self._init is not None and self._init.data != init.data
        self._init = init
        if new and self._reading is not None and self._reading.started:
            self._new_timeline = True  # another encoder run: ffmpeg reads a new file
            self._reading.close()

    def on_fragment(self, fragment: Fragment) -> None:
        feed, init = self._feed, self._init
        if feed is None or feed.closed or init is None:
            return
        if not feed.started or feed.dropping:
            if not fragment.independent:
                if feed.started:
                    self._dropped(fragment)
                return
            if not feed.started:
                feed.append(init.data)
                feed.started = True
            feed.dropping = False
        if feed.size + len(fragment.data) > feed.limit:
            feed.dropping = True  # whole GOPs: the next run of fragments starts independent
            self._dropped(fragment)
            return
        feed.append(fragment.data)

    def _dropped(self, fragment: Fragment) -> None:
        self.status.dropped_frames += 1  # fragments, for a rendition
        self.status.dropped_bytes += len(fragment.data)

    def _next_feed(self) -> InputFeed:
        self._feed = InputFeed(self._queue_bytes)
        return self._feed

    def _args(self) -> list[str]:
        return ffmpeg_forward_args(self.ffmpeg, self.url, input_format="mp4")
