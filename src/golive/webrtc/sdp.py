"""SDP offers, their HTTP bodies and signalling errors shared by WHIP ingest and WHEP playback (webrtc).

Both endpoints take an SDP offer over HTTP and answer with SDP or a JSON error;
`inspect_offer` refuses what no negotiation could accept before any socket is
bound or any ICE agent is started.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc.sdp import SessionDescription
from starlette.requests import Request
from starlette.responses import Response

SDP = "application/sdp"
MAX_OFFER_BYTES = 64 * 1024
# Remote ICE candidates one session takes, offer and trickled ones together. A browser
# sends a few per network interface (host, server-reflexive, relay; in each m-section for
# Chrome); every one more is a candidate pair aioice sends STUN checks to, so without a
# cap one 64 KiB offer made the node send checks to ~700 addresses of the sender's choice.
MAX_REMOTE_CANDIDATES = 64


class SignalingError(Exception):
    """An HTTP error answer: status, a machine-readable reason and words for a person."""

    def __init__(self, status: int, reason: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})

    def response(self, cors: Mapping[str, str]) -> Response:
        body = json.dumps({"error": {"reason": self.reason, "message": self.message}})
        return Response(body, status_code=self.status, media_type="application/json",
                        headers={**cors, **self.headers})


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What a quick look at an offer found, before anything is spent on it."""

    audio: int
    video: int
    candidates: int = 0  # a=candidate lines, mDNS ones included


def inspect_offer(sdp: str) -> OfferSummary:
    """Reject what no negotiation could accept, without binding a socket (raises SignalingError)."""
    candidates = count_candidates(sdp)
    if candidates > MAX_REMOTE_CANDIDATES:
        raise SignalingError(400, "too_many_candidates",
                             f"the offer has {candidates} ICE candidates; at most "
                             f"{MAX_REMOTE_CANDIDATES} are taken")
    # Counted before parsing: a 64 KiB offer of ~800 m-sections took aiortc's parser ~7 ms.
    if sum(1 for line in sdp.splitlines() if line.lstrip().startswith("m=")) > 2:
        raise SignalingError(400, "bad_offer",
                             "one audio and one video section at most, and nothing else")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:
        raise SignalingError(400, "bad_offer", f"the SDP offer does not parse: {exc}") from None
    kinds = [m.kind for m in description.media]
    audio, video = kinds.count("audio"), kinds.count("video")
    if audio + video == 0:
        raise SignalingError(400, "bad_offer", "the offer has no audio or video section")
    if audio > 1 or video > 1 or len(kinds) != audio + video:
        raise SignalingError(400, "bad_offer",
                             "one audio and one video section at most, and nothing else")
    for media in description.media:
        # Session-level ICE and DTLS attributes are copied into each section by the parser.
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise SignalingError(400, "bad_offer", "the offer has no ICE credentials")
        if not (media.dtls and media.dtls.fingerprints):
            raise SignalingError(400, "bad_offer", "the offer has no DTLS fingerprint")
    return OfferSummary(audio, video, candidates)


def count_candidates(sdp: str) -> int:
    """The a=candidate lines of an SDP offer or trickle-ice-sdpfrag body."""
    return sum(1 for line in sdp.splitlines() if line.lstrip().startswith("a=candidate:"))


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_text(request: Request, limit: int) -> str:
    """The body as UTF-8 text, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise SignalingError(413, "too_large", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise SignalingError(413, "too_large", f"the body is larger than {limit} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignalingError(400, "bad_offer", "the body is not UTF-8 text") from None
