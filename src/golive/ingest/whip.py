"""WHIP ingest (RFC 9725): a browser or encoder publishes over WebRTC (ingest).

`POST /whip` with `Authorization: Bearer STREAM_KEY` and an SDP offer creates a
session at `/whip/SESSION_ID` and answers 201 with the SDP answer; `DELETE` on the
session ends the broadcast; `PATCH` takes trickled ICE candidates; `OPTIONS`
answers CORS preflights. aiortc terminates ICE, DTLS and SRTP; the session's
encoded frames become the broadcast's FLV tags (`golive.webrtc.receive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.sdp import SessionDescription, candidate_from_sdp
from fastapi import APIRouter, Request, Response

from golive.core import RepeatedLog
from golive.formats import MediaTag
from golive.stream import Publisher, PublishRefused, PublishTarget, RefusalReason
from golive.webrtc import (
    MAX_OFFER_BYTES,
    MAX_REMOTE_CANDIDATES,
    SDP,
    MediaConverter,
    OfferSummary,
    SignalingError,
    WebRtcOptions,
    advertise_public_address,
    gather_on,
    inspect_offer,
    is_mdns_name,
    media_type,
    read_text,
    tap_encoded_frames,
    without_mdns_candidates,
)

log = logging.getLogger(__name__)

TRICKLE = "application/trickle-ice-sdpfrag"
MAX_PATCH_BYTES = 16 * 1024

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Accept-Post",
    "Access-Control-Max-Age": "86400",
}
_REFUSAL_STATUS = {
    RefusalReason.UNKNOWN_KEY: 401,
    RefusalReason.DISABLED: 403,
    RefusalReason.ALREADY_LIVE: 403,
    RefusalReason.TOO_MANY_PUBLISHERS: 503,
    RefusalReason.SHUTTING_DOWN: 503,
    RefusalReason.THROTTLED: 429,
}


@dataclass(frozen=True, slots=True)
class WhipLimits:
    max_sessions: int = 20
    connect_timeout: float = 15.0
    idle_timeout: float = 20.0


def _codec_preferences(kind: str) -> list[Any]:
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    assert capabilities is not None
    codecs = capabilities.codecs
    if kind == "video":
        # H.264 first: it reaches the transcoder without being decoded. VP8 is decoded
        # and encoded to H.264 once, so it is accepted only when H.264 is not offered.
        h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"]
        vp8 = [c for c in codecs if c.mimeType.lower() == "video/vp8"]
        rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
        return h264 + vp8 + rtx
    return [c for c in codecs if c.mimeType.lower() == "audio/opus"]


class WhipSession:
    """One WHIP publisher: its peer connection, its `Publisher` and its media path."""

    def __init__(self, endpoint: WhipEndpoint, session_id: str, pc: RTCPeerConnection,
                 stream_key: str) -> None:
        self.id = session_id
        self.etag = f'"{secrets.token_hex(8)}"'
        self.pc = pc
        self.stream_key = stream_key
        self.publisher: Publisher | None = None
        self.media: MediaConverter | None = None
        self.answer = ""
        self.created_at = time.monotonic()
        # Set once the publisher sent an mDNS candidate, which golive does not resolve:
        # its addresses then arrive as peer-reflexive candidates, never as the end.
        self.hides_addresses = False
        self.remote_candidates = 0  # taken from the offer and PATCHes: MAX_REMOTE_CANDIDATES
        self._endpoint = endpoint
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def stream_id(self) -> str:
        return self.publisher.stream_id if self.publisher is not None else "-"

    def push(self, tag: MediaTag) -> None:
        if self.publisher is not None and not self._closed:
            self.publisher.push(tag)

    def start_watchdog(self, limits: WhipLimits) -> None:
        self._watchdog = asyncio.create_task(self._watch(limits), name=f"whip-watch-{self.id}")

    async def _watch(self, limits: WhipLimits) -> None:
        # ICE consent checks notice a vanished peer; these catch one that connects and
        # never completes DTLS, or stays connected without sending media.
        await asyncio.sleep(limits.connect_timeout)
        if self.pc.connectionState != "connected":
            self._endpoint.schedule_close(self, "timeout: WebRTC connection not established")
            return
        while not self._closed:
            await asyncio.sleep(min(1.0, limits.idle_timeout / 4))
            media = self.media
            if media is not None and time.monotonic() - media.last_frame_at > limits.idle_timeout:
                self._endpoint.schedule_close(self, "timeout")
                return

    async def close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        log.info("whip session closed stream_id=%s session=%s reason=%s",
                 self.stream_id, self.id, reason)
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        if self.media is not None:
            self.media.close()
        if self.publisher is not None:
            self.publisher.close(reason)
        with contextlib.suppress(Exception):
            await self.pc.close()


class WhipEndpoint:
    """Every WHIP session on this node, and the HTTP routes that create and end them."""

    def __init__(self, target: PublishTarget, options: WebRtcOptions,
                 limits: WhipLimits | None = None) -> None:
        self._target = target
        self._options = options
        self._limits = limits or WhipLimits()
        self._log = RepeatedLog(log)  # refusals a flood repeats: one line per 10 s per key
        self._sessions: dict[str, WhipSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def sessions(self) -> list[WhipSession]:
        return list(self._sessions.values())

    # Operations (HTTP-free, so tests and WHEP can reuse them) ---------------------------

    async def publish(self, stream_key: str, offer: str, remote_address: str) -> WhipSession:
        if self._closing:
            raise SignalingError(503, "shutting_down", "server is shutting down",
                            {"Retry-After": "10"})
        if len(self._sessions) >= self._limits.max_sessions:
            raise SignalingError(503, "too_many_sessions", "server has reached its WHIP session limit",
                            {"Retry-After": "5"})
        summary = inspect_offer(offer)
        pc = RTCPeerConnection(configuration=self._options.configuration())
        session = WhipSession(self, secrets.token_urlsafe(16), pc, stream_key)
        session.remote_candidates = summary.candidates
        try:
            session.publisher = await self._target.open_publisher(
                stream_key, protocol="whip", remote_address=remote_address,
                disconnect=lambda reason: self.schedule_close(session, f"kicked: {reason}"),
            )
        except PublishRefused as refused:
            await pc.close()
            status = _REFUSAL_STATUS.get(refused.reason, 403)
            log.info("whip publish refused remote=%s reason=%s", remote_address, refused.reason)
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
            if status in (429, 503):
                headers["Retry-After"] = "5" if status == 503 else "30"
            raise SignalingError(status, str(refused.reason), refused.message, headers) from None
        self._sessions[session.id] = session
        try:
            answer = await self._negotiate(session, offer, summary)
        except SignalingError:
            await self._close(session, "error: offer refused")
            raise
        except Exception as exc:
            await self._close(session, "error: offer refused")
            raise SignalingError(400, "bad_offer", f"the offer cannot be answered: {exc}") from None
        session.answer = answer
        session.start_watchdog(self._limits)
        log.info("whip session opened stream_id=%s session=%s remote=%s",
                 session.stream_id, session.id, remote_address)
        return session

    async def _negotiate(self, session: WhipSession, offer: str, summary: OfferSummary) -> str:
        pc = session.pc
        media = MediaConverter(session.push, label=session.stream_id)
        session.media = media
        for kind, count in (("audio", summary.audio), ("video", summary.video)):
            if count:
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                transceiver.setCodecPreferences(_codec_preferences(kind))
                tap_encoded_frames(transceiver.receiver, media.on_frame)

        @pc.on("connectionstatechange")
        def state_changed() -> None:
            state = pc.connectionState
            log.info("whip connection state stream_id=%s session=%s state=%s",
                     session.stream_id, session.id, state)
            if state == "failed":
                self.schedule_close(session, "error: WebRTC connection failed")
            elif state == "closed":
                self.schedule_close(session, "eof")

        usable = without_mdns_candidates(offer)
        session.hides_addresses = usable.count("a=candidate:") < offer.count("a=candidate:")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=usable, type="offer"))
        except Exception as exc:
            raise SignalingError(
                400, "unsupported_offer",
                f"{exc}: golive takes H.264 (constrained baseline) or VP8 video and Opus audio",
            ) from None
        answer = await pc.createAnswer()
        with gather_on(self._options.host_addresses):
            await pc.setLocalDescription(answer)
        local = pc.localDescription
        return advertise_public_address(local.sdp, self._options.public_address)

    async def trickle(self, session_id: str, fragment: str, if_match: str | None) -> None:
        """Apply a trickle-ice-sdpfrag (RFC 8840) PATCH body (raises SignalingError)."""
        session = self.session(session_id)
        if if_match is not None and if_match != "*" and if_match != session.etag:
            raise SignalingError(412, "etag_mismatch", "If-Match does not name this session's ETag")
        mid: str | None = None
        candidates: list[tuple[str | None, str]] = []
        end = False
        ufrag: str | None = None
        for raw in fragment.splitlines():
            line = raw.strip()
            if line.startswith("a=ice-ufrag:"):
                ufrag = line.split(":", 1)[1]
            elif line.startswith("a=mid:"):
                mid = line.split(":", 1)[1]
            elif line.startswith("a=candidate:"):
                candidates.append((mid, line[2:]))
            elif line == "a=end-of-candidates":
                end = True
        # Before the remote description is parsed again: a refused PATCH costs little.
        if session.remote_candidates + len(candidates) > MAX_REMOTE_CANDIDATES:
            self._log.warning(session.id, time.monotonic(),
                              "whip trickle refused reason=too_many_candidates stream_id=%s "
                              "session=%s candidates=%d", session.stream_id, session.id,
                              session.remote_candidates + len(candidates))
            raise SignalingError(400, "too_many_candidates",
                                 f"a session takes at most {MAX_REMOTE_CANDIDATES} ICE "
                                 "candidates, offer and PATCHes together")
        remote = session.pc.remoteDescription
        remote_ufrags = {
            m.ice.usernameFragment for m in SessionDescription.parse(remote.sdp).media if m.ice
        }
        if if_match == "*" or (ufrag is not None and ufrag not in remote_ufrags):
            # aiortc cannot restart ICE; RFC 9725 4.3.2 asks for 422 when only trickle works.
            raise SignalingError(422, "ice_restart_unsupported",
                            "ICE restarts are not supported; start a new session instead")
        session.remote_candidates += len(candidates)
        for candidate_mid, text in candidates:
            try:
                candidate = candidate_from_sdp(text.split(":", 1)[1])
            except Exception:
                raise SignalingError(400, "bad_candidate", f"cannot parse {text[:80]!r}") from None
            if is_mdns_name(candidate.ip):
                session.hides_addresses = True  # as in offers: without_mdns_candidates
                continue
            candidate.sdpMid = candidate_mid
            if candidate_mid is None:
                candidate.sdpMLineIndex = 0
            await session.pc.addIceCandidate(candidate)
        if end and not session.hides_addresses:
            await session.pc.addIceCandidate(None)

    async def end(self, session_id: str) -> None:
        """DELETE: the publisher ends its broadcast."""
        session = self.session(session_id)
        await self._close(session, "unpublish")

    def session(self, session_id: str) -> WhipSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SignalingError(404, "unknown_session", "no such WHIP session")
        return session

    def schedule_close(self, session: WhipSession, reason: str) -> None:
        """Close from a callback (state change, kick): the work runs as its own task."""
        task = asyncio.get_running_loop().create_task(self._close(session, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, session: WhipSession, reason: str) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        await session.close(reason)

    async def close(self) -> None:
        """Server shutdown: end every session."""
        self._closing = True
        await asyncio.gather(
            *(self._close(s, "server shutting down") for s in list(self._sessions.values())),
            return_exceptions=True,
        )
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # HTTP -----------------------------------------------------------------------------

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/whip", self._http_post, methods=["POST"],
                             include_in_schema=False)
        router.add_api_route("/whip", self._http_options, methods=["OPTIONS"],
                             include_in_schema=False)
        router.add_api_route("/whip/{session_id}", self._http_session_options,
                             methods=["OPTIONS"], include_in_schema=False)
        router.add_api_route("/whip/{session_id}", self._http_patch, methods=["PATCH"],
                             include_in_schema=False)
        router.add_api_route("/whip/{session_id}", self._http_delete, methods=["DELETE"],
                             include_in_schema=False)
        return router

    async def _http_options(self, request: Request) -> Response:
        return Response(status_code=204, headers={
            **_CORS, "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Allow": "POST, OPTIONS", "Accept-Post": SDP,
        })

    async def _http_session_options(self, request: Request, session_id: str) -> Response:
        return Response(status_code=204, headers={
            **_CORS, "Access-Control-Allow-Methods": "PATCH, DELETE, OPTIONS",
            "Allow": "PATCH, DELETE, OPTIONS", "Accept-Patch": TRICKLE,
        })

    async def _http_post(self, request: Request) -> Response:
        try:
            key = _bearer(request)
            if media_type(request) != SDP:
                raise SignalingError(415, "unsupported_media_type",
                                f"the offer must be sent as {SDP}")
            offer = await read_text(request, MAX_OFFER_BYTES)
            remote = request.client.host if request.client else "unknown"
            session = await self.publish(key, offer, remote)
        except SignalingError as error:
            return error.response(_CORS)
        headers = {
            **_CORS,
            "Location": f"/whip/{session.id}",
            "ETag": session.etag,
            "Accept-Patch": TRICKLE,
        }
        response = Response(session.answer, status_code=201, media_type=SDP, headers=headers)
        for link in self._options.link_headers():
            response.headers.append("Link", link)
        return response

    async def _http_patch(self, request: Request, session_id: str) -> Response:
        try:
            session = self.session(session_id)
            _check_session_token(request, session)
            if media_type(request) != TRICKLE:
                raise SignalingError(415, "unsupported_media_type", f"PATCH bodies must be {TRICKLE}")
            fragment = await read_text(request, MAX_PATCH_BYTES)
            await self.trickle(session_id, fragment, request.headers.get("if-match"))
        except SignalingError as error:
            return error.response(_CORS)
        return Response(status_code=204, headers={**_CORS, "ETag": session.etag})

    async def _http_delete(self, request: Request, session_id: str) -> Response:
        try:
            session = self.session(session_id)
            _check_session_token(request, session)
            await self.end(session_id)
        except SignalingError as error:
            return error.response(_CORS)
        return Response(status_code=200, headers=_CORS)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignalingError(401, "missing_token", "send the stream key as Authorization: Bearer KEY",
                        {"WWW-Authenticate": "Bearer"})
    return token.strip()


def _check_session_token(request: Request, session: WhipSession) -> None:
    # The session URL is an unguessable capability; a token, if sent, must still match.
    if "authorization" in request.headers and _bearer(request) != session.stream_key:
        raise SignalingError(403, "wrong_token", "this session belongs to another stream key")
