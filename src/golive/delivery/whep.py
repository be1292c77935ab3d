"""WHEP playback (draft-ietf-wish-whep): real-time viewers over WebRTC (delivery).

`POST /whep/PLAYBACK_ID` with an SDP offer answers 201 with the SDP answer and a
`Location` for the viewer session; `DELETE` on it ends the session. Nothing is
encoded per viewer: the transcoder writes one extra WebRTC-safe output per
broadcast (H.264 constrained baseline without B-frames, a keyframe every second,
Opus; `golive.media.command.WebRtcRendition`), whose fragmented MP4 is split here
into samples. H.264 samples are turned from AVCC into Annex-B with SPS and PPS
before every IDR and packetized into RTP payloads once (aiortc's own H.264
packetizer), and every viewer's sender sends those same payloads
(`golive.webrtc.send_packetized`): per viewer there is only the RTP header, SRTP and
the socket write. A new viewer starts at the next keyframe; picture-loss requests
are not acted on, so the 1 s GOP bounds the wait.

An offer that never completes ICE and DTLS must not hold a viewer's place: sessions
still connecting ("pending") are counted apart from connected viewers, against their
own small budget per broadcast (a quarter of the viewer cap, at least 4) and a cap per
source address, and are closed when their connect deadline passes. Only connected
sessions count against `max_viewers`, so a connected viewer never loses its slot to
offers, and one address cannot fill the pending budget on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol
from urllib.parse import quote

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.h264 import H264Encoder
from aiortc.mediastreams import MediaStreamError
from fastapi import APIRouter, Request, Response

from golive.core import RepeatedLog, address_of, client_key
from golive.delivery.access import PlaybackAccess, Refusal, Viewer
from golive.delivery.relay import OwnerDirectory, OwnerUnknown
from golive.formats import (
    CodecError,
    Fragment,
    InitSegment,
    IsobmffError,
    fragment_samples,
    parse_avc_config,
    video_decoder_config,
)
from golive.packaging import Presentation
from golive.webrtc import (
    MAX_OFFER_BYTES,
    SDP,
    PacketizedFrame,
    SignalingError,
    WebRtcOptions,
    advertise_public_address,
    gather_on,
    inspect_offer,
    media_type,
    read_text,
    send_packetized,
    without_mdns_candidates,
)

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
_VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)
_QUEUE_LIMIT = 300  # frames per viewer track before it skips to the next keyframe

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location, Link",
    "Access-Control-Max-Age": "86400",
}


# AVCC → Annex-B ------------------------------------------------------------------------


def parse_avcc(init: bytes) -> tuple[int, list[bytes]] | None:
    """(NAL length size, [SPS..., PPS...]) from the video track's avcC in an init segment."""
    try:
        found = video_decoder_config(init)
        if found is None or found[0] != "avcC":
            return None
        config = parse_avc_config(found[1])
    except (IsobmffError, CodecError):
        return None
    return config.nal_length_size, [*config.sps, *config.pps]


def avcc_to_annexb(sample: bytes, length_size: int, parameter_sets: list[bytes],
                   keyframe: bool) -> bytes:
    """Length-prefixed NAL units → start codes; SPS and PPS put before an IDR lacking them."""
    units: list[bytes] = []
    q = 0
    while q + length_size <= len(sample):
        n = int.from_bytes(sample[q : q + length_size], "big")
        q += length_size
        units.append(sample[q : q + n])
        q += n
    types = {u[0] & 0x1F for u in units if u}
    if (keyframe or 5 in types) and not {7, 8} <= types:
        units = [*parameter_sets, *(u for u in units if u and u[0] & 0x1F not in (7, 8, 9))]
    return b"".join(b"\x00\x00\x00\x01" + u for u in units if u)


# Fan-out --------------------------------------------------------------------------------


class ViewerTrack(MediaStreamTrack):
    """One viewer's audio or video: the feed's packetized frames, for a packetized sender."""

    def __init__(self, kind: str, on_stop: Callable[[ViewerTrack], None]) -> None:
        super().__init__()
        self.kind = kind
        self.waiting_for_keyframe = kind == "video"
        self._queue: deque[PacketizedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._on_stop = on_stop
        self.sent = 0

    @property
    def queued(self) -> int:
        """Frames waiting for this viewer's sender."""
        return len(self._queue)

    def offer(self, frame: PacketizedFrame) -> None:
        if self.readyState != "live":
            return
        keyframe = frame.keyframe
        if self.waiting_for_keyframe:
            if not keyframe:
                return
            self.waiting_for_keyframe = False
        if len(self._queue) >= _QUEUE_LIMIT:  # a stuck viewer: start again at a keyframe
            self._queue.clear()
            if self.kind == "video":
                self.waiting_for_keyframe = not keyframe
                if not keyframe:
                    return
        self._queue.append(frame)
        if len(self._queue) == 1:
            self._wakeup.set()

    # Not the av.Frame | av.Packet of MediaStreamTrack: its sender was made to send these
    # (send_packetized), and nothing else reads this track.
    async def recv(self) -> PacketizedFrame:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._wakeup.set()
        self._on_stop(self)


class WebRtcFeed:
    """The WebRTC output of one broadcast, fanned out to every viewer's tracks.

    A sink of the transcoder's WebRTC-safe output (`golive.media.output.OutputSink`,
    met by shape: delivery/ does not import media/); the composition root hands
    this class to the live pipeline as the factory that makes one per broadcast.
    """

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self._init: InitSegment | None = None
        self._avcc: tuple[int, list[bytes]] | None = None
        self._kinds: dict[int, tuple[str, int]] = {}  # track id -> (kind, timescale)
        self._tracks: set[ViewerTrack] = set()
        self._packetizer = H264Encoder()  # only its pack(): RTP payloads, made once here
        # Continuous clocks across ffmpeg restarts: a new init segment starts a new timeline.
        self._offset = {"video": 0, "audio": 0}
        self._next = {"video": 0, "audio": 0}
        self.closed = False
        self._close_listeners: list[Callable[[], None]] = []
        self.video_packets = 0
        self.audio_packets = 0

    @property
    def ready(self) -> bool:
        return self._init is not None and not self.closed

    @property
    def has_audio(self) -> bool:
        return any(kind == "audio" for kind, _ in self._kinds.values())

    def track(self, kind: str) -> ViewerTrack:
        track = ViewerTrack(kind, self._tracks.discard)
        self._tracks.add(track)
        return track

    def on_init(self, init: InitSegment) -> None:
        self._init = init
        self._avcc = parse_avcc(init.data)
        self._kinds = {t.track_id: (t.kind, t.timescale) for t in init.tracks}
        self._offset = dict(self._next)

    def on_fragment(self, fragment: Fragment) -> None:
        init = self._init
        if init is None or self.closed:
            return
        try:
            samples = list(fragment_samples(init, fragment))
        except IsobmffError as exc:
            log.warning("whep: unreadable fragment stream_id=%s error=%s", self.stream_id, exc)
            return
        for sample in samples:
            kind, timescale = self._kinds.get(sample.track_id, ("other", 1))
            if kind == "video":
                if self._avcc is None:
                    continue
                clock = VIDEO_CLOCK
            elif kind == "audio":
                clock = AUDIO_CLOCK
            else:
                continue
            pts = self._offset[kind] + (
                (sample.decode_time + sample.composition_offset) * clock // timescale
            )
            self._next[kind] = max(
                self._next[kind],
                self._offset[kind] + (sample.decode_time + sample.duration) * clock // timescale,
            )
            if kind == "video":
                assert self._avcc is not None
                packet = av.Packet(
                    avcc_to_annexb(sample.data, self._avcc[0], self._avcc[1], sample.sync))
                packet.pts = pts
                packet.time_base = _VIDEO_TIME_BASE
                payloads, _ = self._packetizer.pack(packet)
                self.video_packets += 1
            else:
                payloads = [sample.data]  # one Opus packet is one RTP payload (RFC 7587)
                self.audio_packets += 1
            frame = PacketizedFrame(payloads, pts, sample.sync)
            for track in list(self._tracks):
                if track.kind == kind:
                    track.offer(frame)

    def on_close(self, listener: Callable[[], None]) -> None:
        """Call `listener` when the broadcast ends (at once if it has)."""
        if self.closed:
            listener()
        else:
            self._close_listeners.append(listener)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for track in list(self._tracks):
            track.stop()
        listeners, self._close_listeners = self._close_listeners, []
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("whep: close listener failed stream_id=%s", self.stream_id)


# Endpoint ----------------------------------------------------------------------------


class WhepDirectory(Protocol):
    def webrtc_feed(self, playback_id: str) -> WebRtcFeed | None:
        """The WebRTC output of the live broadcast under `playback_id`; None when it is not
        live or its stream has no `webrtc_playback`."""
        ...

    def presentation(self, playback_id: str) -> Presentation | None: ...


class WhepSession:
    def __init__(self, session_id: str, playback_id: str, pc: RTCPeerConnection,
                 feed: WebRtcFeed, address: str = "") -> None:
        self.id = session_id
        self.address = address  # the source address, without port
        self.client = client_key(address) if address else ""  # what per-address limits count
        self.playback_id = playback_id
        self.pc = pc
        self.feed = feed
        self.tracks: list[ViewerTrack] = []
        self.answer = ""
        self.created_at = time.monotonic()
        # Set once ICE and DTLS complete; until then the session is pending, not a viewer.
        self.connected = False
        self.closed = False

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.info("whep session closed playback_id=%s session=%s reason=%s",
                 self.playback_id, self.id, reason)
        for track in self.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()


def _h264_preferences() -> list[Any]:
    capabilities = RTCRtpSender.getCapabilities("video")
    assert capabilities is not None
    # Constrained baseline, packetization-mode 1 first: what the feed carries.
    h264 = [c for c in capabilities.codecs if c.mimeType.lower() == "video/h264"]
    h264.sort(key=lambda c: (c.parameters or {}).get("packetization-mode") != "1")
    return h264


class WhepEndpoint:
    """Every WHEP viewer session of this node and the routes that create and end them."""

    def __init__(self, directory: WhepDirectory, options: WebRtcOptions, *,
                 max_viewers: int, hls_path: str = "/live/{playback_id}.m3u8",
                 connect_timeout: float = 5.0, max_pending: int | None = None,
                 max_pending_per_address: int = 2, max_pending_total: int = 64,
                 access: PlaybackAccess | None = None,
                 owners: OwnerDirectory | None = None) -> None:
        """`max_pending` (sessions still connecting, per broadcast) defaults to a quarter
        of `max_viewers`, at least 4; `connect_timeout` is their ICE and DTLS deadline;
        `max_pending_total` bounds them on the whole node, every broadcast together (each
        holds a peer connection, its UDP sockets and ICE checks).
        `owners`, in a cluster, finds the node holding a broadcast this node does not:
        an offer for it gets a 307 to that node's WHEP URL (RFC 9725 allows redirects)."""
        self._directory = directory
        self._owners = owners
        self._access = access  # tokens and restrictions; None: every playback id is public
        self._options = options
        self._max_viewers = max_viewers
        self._max_pending = max_pending if max_pending is not None else max(4, max_viewers // 4)
        self._max_pending_per_address = max_pending_per_address
        self._max_pending_total = max_pending_total
        self._hls_path = hls_path
        self._connect_timeout = connect_timeout
        self._log = RepeatedLog(log)
        self._sessions: dict[str, WhepSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def sessions(self) -> list[WhepSession]:
        return list(self._sessions.values())

    def viewers(self, feed: WebRtcFeed) -> int:
        """Connected viewers of `feed`: what `max_viewers` bounds."""
        return sum(1 for s in self._sessions.values() if s.feed is feed and s.connected)

    def pending(self, feed: WebRtcFeed) -> int:
        """Sessions of `feed` still completing ICE and DTLS."""
        return sum(1 for s in self._sessions.values() if s.feed is feed and not s.connected)

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """(connected viewers, sessions still connecting, most frames any connected viewer
        has queued) per stream id, for metrics. A backlog that grows means senders do
        not keep up with the feed."""
        counts: dict[str, tuple[int, int, int]] = {}
        for session in self._sessions.values():
            viewers, pending, backlog = counts.get(session.feed.stream_id, (0, 0, 0))
            if session.connected:
                viewers += 1
                backlog = max(backlog, *(t.queued for t in session.tracks if t.kind == "video"),
                              0)
            else:
                pending += 1
            counts[session.feed.stream_id] = (viewers, pending, backlog)
        return counts

    def pending_total(self) -> int:
        """Sessions of every broadcast still completing ICE and DTLS."""
        return sum(1 for s in self._sessions.values() if not s.connected)

    def pending_from(self, address: str) -> int:
        """Sessions from `address`'s client (an IPv6 viewer's /64), on any broadcast, still
        completing ICE and DTLS."""
        client = client_key(address)
        return sum(1 for s in self._sessions.values()
                   if s.client == client and not s.connected)

    def _admit(self, playback_id: str, feed: WebRtcFeed, address: str) -> None:
        """Refuse an offer the viewer cap, the pending budget or its address has no room for."""
        if self.viewers(feed) >= self._max_viewers:
            hls = self._hls_path.format(playback_id=playback_id)
            body = {"error": {
                "reason": "viewer_limit",
                "message": "this broadcast has reached its real-time viewer limit; "
                           "play it over LL-HLS instead",
                "fallback": {"protocol": "ll-hls", "url": hls},
            }}
            raise _JsonError(503, body, {"Retry-After": "30", "Link": f'<{hls}>; rel="alternate"'})
        # A pending session ends by its deadline at the latest, so that is the wait.
        retry = {"Retry-After": str(max(1, math.ceil(self._connect_timeout)))}
        now = time.monotonic()
        if address and self.pending_from(address) >= self._max_pending_per_address:
            self._log.warning(f"address:{address}", now,
                              "whep offer refused reason=pending_per_address address=%s "
                              "playback_id=%s", address, playback_id)
            raise SignalingError(429, "too_many_pending",
                                 "too many WebRTC sessions from this address are still "
                                 "connecting; finish or end one first", retry)
        if self.pending_total() >= self._max_pending_total:
            self._log.warning("node", now, "whep offer refused reason=pending_total "
                              "playback_id=%s address=%s", playback_id, address)
            raise SignalingError(503, "too_many_pending",
                                 "too many WebRTC viewers are connecting to this server at "
                                 "once; retry shortly", retry)
        if self.pending(feed) >= self._max_pending:
            self._log.warning(f"feed:{playback_id}", now,
                              "whep offer refused reason=pending_limit playback_id=%s",
                              playback_id)
            raise SignalingError(503, "too_many_pending",
                                 "too many viewers of this broadcast are connecting at once; "
                                 "retry shortly", retry)

    async def play(self, playback_id: str, offer: str, remote: str = "", *,
                   token: str | None = None, referrer: str | None = None,
                   own_host: str | None = None, user_agent: str = "") -> WhepSession:
        """Answer `offer` for a viewer at `remote` ("ip" or "ip:port"; "" when unknown).

        A signed playback id needs its playback token (`aud` v), checked before the feed
        is looked up so that a refusal does not tell whether the stream is live.
        """
        if self._closing:
            raise SignalingError(503, "shutting_down", "server is shutting down", {"Retry-After": "10"})
        if self._access is not None:
            viewer = Viewer("whep", address_of(remote) if remote else "", user_agent)
            verdict = await self._access.check(playback_id, token, audience="v", viewer=viewer,
                                               referrer=referrer, own_host=own_host)
            if isinstance(verdict, Refusal):
                kind = "unknown_playback_id" if verdict.status == 404 else "forbidden"
                raise SignalingError(verdict.status, kind, verdict.reason)
        feed = self._directory.webrtc_feed(playback_id)
        if feed is None or feed.closed:
            presentation = self._directory.presentation(playback_id)
            if presentation is None and self._owners is not None:
                await self._redirect_to_owner(self._owners, playback_id, token)
            if presentation is None or presentation.ended:
                raise SignalingError(404, "unknown_playback_id",
                                     "no live broadcast under this playback id")
            hls = self._hls_path.format(playback_id=playback_id)
            if presentation.audio_only:  # the real-time output carries video
                reason, message = "audio_only", (
                    "this broadcast is sound alone, which has no real-time (WebRTC) output; "
                    "play it over LL-HLS")
            else:
                reason, message = "webrtc_playback_off", (
                    "this broadcast has no real-time (WebRTC) output: its stream's "
                    "webrtc_playback is off, or was turned on after the broadcast started; "
                    "play it over LL-HLS")
            raise _JsonError(404, {"error": {
                "reason": reason,
                "message": message,
                "fallback": {"protocol": "ll-hls", "url": hls},
            }}, {"Link": f'<{hls}>; rel="alternate"'})
        if not feed.ready:
            raise SignalingError(503, "starting", "the broadcast's real-time output is starting",
                            {"Retry-After": "1"})
        address = address_of(remote) if remote else ""
        self._admit(playback_id, feed, address)
        summary = inspect_offer(offer)
        pc = RTCPeerConnection(configuration=self._options.configuration())
        session = WhepSession(secrets.token_urlsafe(16), playback_id, pc, feed, address)
        self._sessions[session.id] = session
        try:
            if summary.video:
                track = feed.track("video")
                session.tracks.append(track)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(_h264_preferences())
                send_packetized(transceiver.sender)
            if summary.audio:
                track = feed.track("audio")
                session.tracks.append(track)
                send_packetized(pc.addTransceiver(track, direction="sendonly").sender)

            @pc.on("connectionstatechange")
            def state_changed() -> None:
                if pc.connectionState == "connected" and not session.connected:
                    self._connected(session)
                elif pc.connectionState in ("failed", "closed"):
                    self.schedule_close(session, f"connection {pc.connectionState}")

            try:
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp=without_mdns_candidates(offer), type="offer"))
            except Exception as exc:
                raise SignalingError(400, "unsupported_offer",
                                f"{exc}: golive plays H.264 video and Opus audio") from None
            answer = await pc.createAnswer()
            with gather_on(self._options.host_addresses):
                await pc.setLocalDescription(answer)
            session.answer = advertise_public_address(pc.localDescription.sdp,
                                                      self._options.public_address)
        except BaseException:
            await self._close(session, "error: offer refused")
            raise
        feed.on_close(lambda: self.schedule_close(session, "broadcast ended"))
        task = asyncio.get_running_loop().create_task(self._watch(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("whep session opened playback_id=%s session=%s viewers=%d pending=%d",
                 playback_id, session.id, self.viewers(feed), self.pending(feed))
        return session

    def _connected(self, session: WhepSession) -> None:
        """A pending session becomes a viewer, if the viewer cap still has room."""
        if session.closed:
            return
        if self.viewers(session.feed) >= self._max_viewers:
            # Others connected first; the cap holds for connected viewers, never more.
            self.schedule_close(session, "viewer limit reached while connecting")
            return
        session.connected = True

    async def _watch(self, session: WhepSession) -> None:
        await asyncio.sleep(self._connect_timeout)
        if not session.connected:
            await self._close(session, "timeout: WebRTC connection not established")

    def session(self, session_id: str) -> WhepSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SignalingError(404, "unknown_session", "no such WHEP session")
        return session

    async def end(self, session_id: str) -> None:
        await self._close(self.session(session_id), "viewer left")

    def schedule_close(self, session: WhepSession, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._close(session, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, session: WhepSession, reason: str) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        await session.close(reason)

    async def close(self) -> None:
        self._closing = True
        await asyncio.gather(*(self._close(s, "server shutting down")
                               for s in list(self._sessions.values())), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # HTTP ---------------------------------------------------------------------------

    @staticmethod
    async def _redirect_to_owner(owners: OwnerDirectory, playback_id: str,
                                 token: str | None) -> None:
        """Raise the 307 to the owner's WHEP URL (503 while no node holds it); return when
        no node does (the caller's 404). The token goes into the URL: a browser drops
        `Authorization` on a redirect to another origin."""
        owner = await owners.owner_url(playback_id)
        if isinstance(owner, OwnerUnknown):
            raise SignalingError(503, "moving", "the node serving this broadcast is "
                                 "changing; retry", {"Retry-After": "1"})
        if owner is not None:
            location = f"{owner}/whep/{playback_id}"
            if token:
                location += "?token=" + quote(token, safe="")
            raise _JsonError(307, {"error": {
                "reason": "elsewhere",
                "message": "another node serves this broadcast: send the offer there",
            }}, {"Location": location})

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/whep/{playback_id}", self._http_post, methods=["POST"],
                             include_in_schema=False)
        router.add_api_route("/whep/{playback_id}", self._http_options, methods=["OPTIONS"],
                             include_in_schema=False)
        router.add_api_route("/whep/{playback_id}/{session_id}", self._http_delete,
                             methods=["DELETE"], include_in_schema=False)
        router.add_api_route("/whep/{playback_id}/{session_id}", self._http_options,
                             methods=["OPTIONS"], include_in_schema=False)
        return router

    async def _http_options(self, request: Request) -> Response:
        return Response(status_code=204, headers={
            **_CORS, "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
            "Allow": "POST, DELETE, OPTIONS", "Accept-Post": SDP,
        })

    async def _http_post(self, request: Request, playback_id: str) -> Response:
        try:
            if media_type(request) != SDP:
                raise SignalingError(415, "unsupported_media_type", f"the offer must be sent as {SDP}")
            offer = await read_text(request, MAX_OFFER_BYTES)
            session = await self.play(playback_id, offer,
                                      request.client.host if request.client else "",
                                      token=_bearer(request) or request.query_params.get("token"),
                                      referrer=request.headers.get("referer"),
                                      own_host=request.headers.get("host"),
                                      user_agent=request.headers.get("user-agent", ""))
        except _JsonError as error:
            return error.response()
        except SignalingError as error:
            return error.response(_CORS)
        response = Response(session.answer, status_code=201, media_type=SDP, headers={
            **_CORS, "Location": f"/whep/{playback_id}/{session.id}",
        })
        for link in self._options.link_headers():
            response.headers.append("Link", link)
        return response

    async def _http_delete(self, request: Request, playback_id: str,
                           session_id: str) -> Response:
        try:
            session = self.session(session_id)
            if session.playback_id != playback_id:
                raise SignalingError(404, "unknown_session", "no such WHEP session")
            await self.end(session_id)
        except SignalingError as error:
            return error.response(_CORS)
        return Response(status_code=200, headers=_CORS)


def _bearer(request: Request) -> str | None:
    """The playback token of `Authorization: Bearer JWT` (how WHEP clients send one)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


class _JsonError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(body["error"]["message"])
        self.status, self.body, self.headers = status, body, headers

    def response(self) -> Response:
        return Response(json.dumps(self.body), status_code=self.status,
                        media_type="application/json", headers={**_CORS, **self.headers})
