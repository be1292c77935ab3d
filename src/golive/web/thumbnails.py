"""`/thumbnail/PLAYBACK_ID.jpg`: a still of a live stream, or of an asset at a time, and
`/storyboard/PLAYBACK_ID.vtt`: an asset's stills as a WebVTT thumbnails track (web).

Live: the first frame (a keyframe) of the latest complete segment in the packaging
window, from the smallest rendition at least as wide as asked; `?segment=MSN`, the
segment with that media sequence number (every rendition numbers alike) anywhere in
the DVR window, from memory or, past it, from the recording: the watch page's DVR seek
bar previews where it would go with these. Assets
(`?time=SECONDS`): `RecordedFrames` finds the stored segment at that time in the
recording library and the frame that far into it; without a library, `?time=`
answers 404. The decode itself is the media stage's `Thumbnailer` (ffmpeg in a
subprocess, bounded, cached).

A storyboard (as Mux serves `storyboard.vtt`) lists a recording's moments at whole steps
(`storyboard_step`: at most `STORYBOARD_STILLS`, `STORYBOARD_MIN_STEP_S` apart at least),
each cue naming that moment's still, for players that preview seeking from a WebVTT
thumbnails track (Video.js, Plyr, JW Player, Shaka's `addThumbnailsTrack`); the watch
page's seek bar asks for the same stills.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from golive.delivery import (
    RELAY_HEADER,
    THUMBNAIL_PARAMS,
    UNAVAILABLE,
    OwnerRelay,
    PlaybackAccess,
    Refusal,
    Relayed,
    Unavailable,
    Viewer,
)
from golive.media import (
    MAX_THUMBNAIL_WIDTH,
    MIN_THUMBNAIL_WIDTH,
    SegmentMedia,
    ThumbnailBusy,
    ThumbnailError,
)
from golive.store import AssetRecord, AssetSegmentRecord

if TYPE_CHECKING:
    from golive.delivery import DvrArchive
    from golive.media import Thumbnailer
    from golive.packaging import Presentation, RenditionWindow

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PLAYBACK_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_WIDTH = re.compile(r"[0-9]{1,5}")
_TIME = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
_SEGMENT = re.compile(r"[0-9]{1,15}")
DEFAULT_WIDTH = 640
MAX_TOKEN_LENGTH = 4096
# A live thumbnail changes with every segment (about every 2 s); an edge may keep it
# that long, so a crowd on the stream list costs one decode per segment.
LIVE_CACHE = "public, max-age=5"
# An asset's frame at a time never changes while the asset exists.
ASSET_CACHE = "public, max-age=3600"
HEADERS = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
STORYBOARD_STILLS = 100
STORYBOARD_MIN_STEP_S = 2
STORYBOARD_WIDTH = 160


def storyboard_step(duration: float) -> int:
    """Whole seconds between a recording's storyboard stills."""
    if not math.isfinite(duration) or duration <= 0:
        return STORYBOARD_MIN_STEP_S
    return max(STORYBOARD_MIN_STEP_S, math.ceil(duration / STORYBOARD_STILLS))


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def storyboard_vtt(playback_id: str, duration: float, *, width: int = STORYBOARD_WIDTH,
                   token: str | None = None) -> str:
    """The WebVTT thumbnails track of a recording `duration` seconds long: a cue per step,
    its text the still of the step's start (`/thumbnail/PLAYBACK_ID.jpg?time=`, the token
    passed on)."""
    step = storyboard_step(duration)
    suffix = f"&token={quote(token, safe='')}" if token else ""
    lines = ["WEBVTT", ""]
    start = 0
    while start < duration:
        end = min(start + step, duration)
        lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}",
                  f"/thumbnail/{playback_id}.jpg?time={start}.0&width={width}{suffix}", ""]
        start += step
    return "\n".join(lines)


class LiveThumbnailSource(Protocol):
    """Live presentations (the origin's directory)."""

    def presentation(self, playback_id: str) -> Presentation | None: ...


class AssetFrames(Protocol):
    """Where an asset's segment at a time comes from (the recording stage, once wired)."""

    async def segment_at(self, playback_id: str, seconds: float, width: int,
                         token: str | None) -> tuple[Hashable, SegmentMedia] | None:
        """(a cache key naming the segment, its media), or None: no such asset or time;
        raises `NoPicture` for a recording of sound alone."""
        ...

    async def picture_duration(self, playback_id: str) -> float | None:
        """A ready recording's duration, or None: no such asset; raises `NoPicture` for a
        recording of sound alone."""
        ...


class RecordingReader(Protocol):
    """The read side of the recording library that asset stills need."""

    async def asset_for_playback(self, playback_id: str) -> AssetRecord | None: ...

    async def segments(self, asset_id: str, rendition: str) -> list[AssetSegmentRecord]: ...

    async def init_bytes(self, asset_id: str, rendition: str, generation: int
                         ) -> bytes | None: ...

    async def segment_bytes(self, asset_id: str, rendition: str, msn: int) -> bytes | None: ...


class RecordedFrames:
    """`AssetFrames` from the recording library: the stored segment under a time and the
    offset into it (to a tenth of a second, which also bounds how many stills one asset
    can make the cache hold)."""

    def __init__(self, library: RecordingReader) -> None:
        self.library = library

    async def picture_duration(self, playback_id: str) -> float | None:
        asset = await self.library.asset_for_playback(playback_id)
        if asset is None or asset.status != "ready":
            return None
        if not any(r.width for r in asset.renditions):
            raise NoPicture("the recording is audio only: it has no picture")
        return asset.duration

    async def segment_at(self, playback_id: str, seconds: float, width: int,
                         token: str | None) -> tuple[Hashable, SegmentMedia] | None:
        asset = await self.library.asset_for_playback(playback_id)
        if asset is None or asset.status != "ready":
            return None  # (the route has checked the token of a signed asset)
        renditions = [r for r in asset.renditions if r.width]
        if not renditions:
            raise NoPicture("the recording is audio only: it has no picture")
        wide_enough = [r for r in renditions if (r.width or 0) >= width]
        rendition = (min(wide_enough, key=lambda r: r.width or 0) if wide_enough
                     else max(renditions, key=lambda r: r.width or 0))
        start = 0.0
        for segment in await self.library.segments(asset.id, rendition.name):
            if start <= seconds < start + segment.duration:
                offset = round(seconds - start, 1)
                init = await self.library.init_bytes(asset.id, rendition.name,
                                                     segment.generation)
                data = await self.library.segment_bytes(asset.id, rendition.name, segment.msn)
                if init is None or data is None:
                    return None
                key = (asset.id, rendition.name, segment.msn, offset)
                return key, SegmentMedia(init, data, rendition.width, offset)
            start += segment.duration
        return None


class NoPicture(Exception):
    """The broadcast or recording has sound alone: there is no frame to show."""


def _picture_width(window: RenditionWindow) -> int:
    video = window.init.video if window.init is not None else None
    return (video.width or 0) if video is not None else 0


def picture_window(presentation: Presentation, width: int) -> RenditionWindow | None:
    """The rendition that best fits `width`: the narrowest at least that wide, else the
    widest; None before any has its init; raises `NoPicture` for sound alone."""
    if presentation.audio_only:
        raise NoPicture("the broadcast is audio only: it has no picture")
    windows = [w for w in presentation.renditions.values()
               if w.init is not None and w.init.video is not None]
    if not windows:
        return None
    wide_enough = [w for w in windows if _picture_width(w) >= width]
    return (min(wide_enough, key=_picture_width) if wide_enough
            else max(windows, key=_picture_width))


def _held_segment(presentation: Presentation, window: RenditionWindow, msn: int
                  ) -> tuple[Hashable, SegmentMedia] | None:
    """Segment `msn` of `window` with the init it decodes with, if memory holds both."""
    data = window.segment_bytes(msn)
    generation = window.segment_generation(msn)
    # The init it decodes with: after an encoder restart, not necessarily the newest.
    init = window.init_bytes(generation) if generation is not None else None
    if data is None or init is None:
        return None
    return _segment_key(presentation, window, msn), SegmentMedia(
        init, data, _picture_width(window) or None)


def _segment_key(presentation: Presentation, window: RenditionWindow, msn: int
                 ) -> tuple[Hashable, ...]:
    """What names a segment's stills in the thumbnailer's cache (the width is added)."""
    return (presentation.playback_id, presentation.first_msn, window.name, msn)


def latest_segment(presentation: Presentation, width: int
                   ) -> tuple[Hashable, SegmentMedia] | None:
    """The newest complete segment of the rendition that best fits `width`, if any;
    raises `NoPicture` when the renditions that started have no video."""
    window = picture_window(presentation, width)
    if window is None:
        return None
    # The open segment is incomplete; the one before it is the newest complete one.
    for msn in (window.last_msn, window.last_msn - 1):
        if (found := _held_segment(presentation, window, msn)) is not None:
            return found
    return None


async def dvr_segment(presentation: Presentation, window: RenditionWindow, msn: int,
                      archive: DvrArchive | None
                      ) -> tuple[Hashable, SegmentMedia] | Unavailable | None:
    """Segment `msn` of `window` (`picture_window`'s pick), held in memory or, listed by
    the DVR window past it, read from the recording (`archive`); None when the window
    lists no such complete segment; "unavailable" when storage cannot say now."""
    if (found := _held_segment(presentation, window, msn)) is not None:
        return found
    entry = window.dvr.entry(msn) if window.dvr is not None else None
    if archive is None or entry is None or not window.archived(msn):
        return None
    data = await archive.media(presentation, window.name, "segment", msn)
    init: bytes | Unavailable | None = window.init_bytes(entry.generation)
    if init is None:
        init = await archive.media(presentation, window.name, "init", entry.generation)
    if data == UNAVAILABLE or init == UNAVAILABLE:
        return UNAVAILABLE
    if not isinstance(data, bytes) or not isinstance(init, bytes):
        return None
    return _segment_key(presentation, window, msn), SegmentMedia(
        init, data, _picture_width(window) or None)


class ThumbnailRoute:
    """GET/HEAD `/thumbnail/{playback_id}.jpg?width=N[&time=SECONDS | &segment=MSN]
    [&token=JWT]`."""

    def __init__(self, live: LiveThumbnailSource, thumbnailer: Thumbnailer,
                 assets: AssetFrames | None = None, *,
                 access: PlaybackAccess | None = None, relay: OwnerRelay | None = None,
                 dvr: DvrArchive | None = None) -> None:
        """`access` checks signed playback ids' tokens (audience `t`) and restrictions;
        without it every playback id is treated as public. `relay` (in a cluster) answers
        for a live broadcast another node holds, from that node. `dvr` reads a DVR
        window's segments past memory from the recording."""
        self.live = live
        self.relay = relay
        self.dvr = dvr
        self.thumbnailer = thumbnailer
        self.assets = assets
        self.access = access

    def routes(self) -> list[BaseRoute]:
        return [Route("/thumbnail/{playback_id}.jpg", self.thumbnail, methods=["GET", "HEAD"]),
                Route("/storyboard/{playback_id}.vtt", self.storyboard, methods=["GET", "HEAD"])]

    async def _admit(self, request: Request, default_width: int, *, sealed: bool = False
                     ) -> tuple[str, int, str | None] | JSONResponse:
        """(playback id, width, token) of a request the viewer may make, or the refusal:
        the width checked, a signed playback id's token (audience `t`) and restrictions."""
        playback_id = request.path_params["playback_id"]
        if not PLAYBACK_ID.fullmatch(playback_id):
            return _error(404, "unknown playback id")
        query = request.query_params
        width_text = query.get("width")
        if width_text is None:
            width = default_width
        elif _WIDTH.fullmatch(width_text) and (
                MIN_THUMBNAIL_WIDTH <= int(width_text) <= MAX_THUMBNAIL_WIDTH):
            width = int(width_text)
        else:
            return _error(400, f"width must be a whole number from {MIN_THUMBNAIL_WIDTH} "
                               f"to {MAX_THUMBNAIL_WIDTH}")
        token = query.get("token") or None
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            return _error(400, "token too long")
        if self.access is not None and not sealed:
            verdict = await self.access.check(
                playback_id, token, audience="t",
                viewer=Viewer("thumbnail", request.client.host if request.client else "",
                              request.headers.get("user-agent", "")),
                referrer=request.headers.get("referer"), own_host=request.headers.get("host"))
            if isinstance(verdict, Refusal):
                return _error(verdict.status, verdict.reason)
        return playback_id, width, token

    async def storyboard(self, request: Request) -> Response:
        """GET/HEAD `/storyboard/{playback_id}.vtt?width=N[&token=JWT]`: a recording's
        stills as a WebVTT thumbnails track (`storyboard_vtt`)."""
        admitted = await self._admit(request, STORYBOARD_WIDTH)
        if isinstance(admitted, JSONResponse):
            return admitted
        playback_id, width, token = admitted
        duration = await self._recorded(
            "storyboard", playback_id, "no recording at this playback id",
            lambda assets: assets.picture_duration(playback_id))
        if isinstance(duration, JSONResponse):
            return duration
        return Response(storyboard_vtt(playback_id, duration, width=width, token=token),
                        media_type="text/vtt", headers={**HEADERS, "Cache-Control": ASSET_CACHE})

    async def thumbnail(self, request: Request) -> Response:
        query = request.query_params
        sealed = self.relay is not None and self.relay.trusts(
            request.headers.get(RELAY_HEADER), request.url.path, query, THUMBNAIL_PARAMS)
        admitted = await self._admit(request, DEFAULT_WIDTH, sealed=sealed)
        if isinstance(admitted, JSONResponse):
            return admitted
        playback_id, width, token = admitted
        time_text, segment_text = query.get("time"), query.get("segment")
        if time_text is not None and segment_text is not None:
            return _error(400, "ask for a time (a recording) or a segment (live), not both")
        if segment_text is not None:
            if not _SEGMENT.fullmatch(segment_text):
                return _error(400, "segment must be a media sequence number, like 3593341954")
            return await self._live(playback_id, width, query, int(segment_text))
        if time_text is not None:
            if not _TIME.fullmatch(time_text) or not math.isfinite(float(time_text)):
                return _error(400, "time must be a number of seconds, like 12 or 12.5")
            return await self._asset(playback_id, float(time_text), width, token)
        return await self._live(playback_id, width, query)

    async def _live(self, playback_id: str, width: int, query: Mapping[str, str],
                    msn: int | None = None) -> Response:
        presentation = self.live.presentation(playback_id)
        if presentation is None and self.relay is not None:
            return await self._relayed(self.relay, playback_id, query)
        if presentation is None or presentation.ended:
            return _error(404, "not live")
        found: tuple[Hashable, SegmentMedia] | Unavailable | None
        try:
            if msn is None:
                found = latest_segment(presentation, width)
            elif (window := picture_window(presentation, width)) is None:
                found = None
            elif early := self._before_reading(presentation, window, width, msn):
                return early
            else:
                found = await dvr_segment(presentation, window, msn, self.dvr)
        except NoPicture as exc:
            return _error(404, str(exc))
        if found == UNAVAILABLE:
            return _error(503, "recorded media is not available yet", retry=True)
        if found is None:
            return (_error(404, "no complete segment yet", retry=True) if msn is None
                    else _error(404, "the live window lists no such segment"))
        assert not isinstance(found, str)
        key, media = found
        # A segment's still never changes: the live one follows the newest segment.
        cache = LIVE_CACHE if msn is None else ASSET_CACHE
        return await self._jpeg((*_as_tuple(key), width), media, width, cache)

    def _before_reading(self, presentation: Presentation, window: RenditionWindow,
                        width: int, msn: int) -> Response | None:
        """A segment's still the cache holds, or the 503 when decodes are queued past their
        bound: answered before its bytes are read (from storage, past memory)."""
        jpeg = self.thumbnailer.cached((*_segment_key(presentation, window, msn), width))
        if jpeg is not None:
            return _jpeg_response(jpeg, ASSET_CACHE)
        return self._busy() if self.thumbnailer.busy else None

    def _busy(self) -> JSONResponse:
        self.thumbnailer.refuse()
        return _error(503, f"thumbnail unavailable: {ThumbnailBusy.REASON}", retry=True)

    @staticmethod
    async def _relayed(relay: OwnerRelay, playback_id: str, query: Mapping[str, str]
                       ) -> Response:
        """The owner node's thumbnail (the viewer was checked here; the request is sealed)."""
        answer = await relay.answer(playback_id, f"{playback_id}.jpg", query, None,
                                    prefix="thumbnail", params=THUMBNAIL_PARAMS)
        if answer == "absent":
            return _error(404, "not live")
        if not isinstance(answer, Relayed):
            return _error(503, "the node serving this broadcast did not answer", retry=True)
        return Response(answer.body, answer.status, headers=dict(answer.headers))

    async def _recorded(self, what: str, playback_id: str, missing: str,
                        ask: Callable[[AssetFrames], Awaitable[_T | None]]
                        ) -> _T | JSONResponse:
        """What `ask` finds in the recording library, or the answer to give instead: 404
        (`missing`) without a library or an answer, or for a recording of sound alone;
        503 when storage or the index fails (worth a retry, not a 404)."""
        if self.assets is None:
            return _error(404, "no recording at this playback id")
        try:
            found = await ask(self.assets)
        except NoPicture as exc:
            return _error(404, str(exc))
        except Exception as exc:
            log.warning("%s unavailable playback_id=%s error=%s", what, playback_id, exc)
            return _error(503, "recording storage is unavailable", retry=True)
        return _error(404, missing) if found is None else found

    async def _asset(self, playback_id: str, seconds: float, width: int,
                     token: str | None) -> Response:
        if self.thumbnailer.busy:  # (before the segment is read from storage)
            return self._busy()
        found = await self._recorded(
            "asset thumbnail", playback_id, "no recording at this playback id and time",
            lambda assets: assets.segment_at(playback_id, seconds, width, token))
        if isinstance(found, JSONResponse):
            return found
        key, media = found
        return await self._jpeg((*_as_tuple(key), width), media, width, ASSET_CACHE)

    async def _jpeg(self, key: Hashable, media: SegmentMedia, width: int,
                    cache: str) -> Response:
        try:
            jpeg = await self.thumbnailer.jpeg(key, media, width)
        except ThumbnailError as exc:
            return _error(503, f"thumbnail unavailable: {exc}", retry=True)
        return _jpeg_response(jpeg, cache)


def _as_tuple(key: Hashable) -> tuple[Hashable, ...]:
    return key if isinstance(key, tuple) else (key,)


def _jpeg_response(jpeg: bytes, cache: str) -> Response:
    return Response(jpeg, media_type="image/jpeg", headers={**HEADERS, "Cache-Control": cache})


def _error(status: int, message: str, *, retry: bool = False) -> JSONResponse:
    headers = {**HEADERS, "Cache-Control": "public, max-age=1" if status == 404 else "no-cache"}
    if retry:
        headers["Retry-After"] = "2"
    return JSONResponse({"error": message}, status, headers=headers)
