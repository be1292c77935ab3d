"""The one place golive reaches into aiortc's private API (webrtc, shared by WHIP and WHEP).

aiortc has no public hook for a receiver's encoded frames, for asking a sender
for a keyframe, nor for sending frames someone else packetized. golive uses two
internals of `RTCRtpReceiver`: the queue it hands reassembled frames to its decoder
thread on (`__decoder_queue`, name-mangled), and `_send_rtcp_pli`; and one of
`RTCRtpSender`: its encoder (`__encoder`), whose `pack()` it asks for each frame's
RTP payloads. WHEP replaces that encoder so a frame is packetized once per broadcast,
not once per viewer. `check_aiortc` verifies all three have the shape this module
was written against; the composition root runs it at start, so a different aiortc
stops the node with a message naming the tested version instead of WHIP ingest
going quietly dark (no frames), never recovering from loss (no keyframe requests),
or WHEP viewers getting nothing.
"""

from __future__ import annotations

import inspect
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame

log = logging.getLogger(__name__)

TESTED_WITH = "aiortc 1.16"
# Kept in step with the pin in pyproject.toml.

EncodedFrameSink = Callable[[Any, str, bytes, int], None]

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_ENCODER = "_RTCRtpSender__encoder"


class IncompatibleAiortc(RuntimeError):
    """The installed aiortc lacks an internal golive's WebRTC receive path relies on."""


def _fail(what: str) -> IncompatibleAiortc:
    installed = getattr(aiortc, "__version__", "unknown")
    return IncompatibleAiortc(
        f"aiortc {installed} is not compatible with golive's WebRTC adapter: {what}. "
        f"golive was tested with {TESTED_WITH}; install the versions in requirements.lock "
        "(`make run` does)"
    )


def _code_names(function: Any) -> tuple[str, ...]:
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code is not None else ()


def check_aiortc(
    receiver_class: type[Any] = RTCRtpReceiver, frame_class: type[Any] = JitterFrame,
    sender_class: type[Any] = RTCRtpSender,
) -> None:
    """Raise `IncompatibleAiortc` unless the internals used here have their tested shape."""
    init = getattr(receiver_class, "__init__", None)
    handle = getattr(receiver_class, "_handle_rtp_packet", None)
    if _DECODER_QUEUE not in _code_names(init) or _DECODER_QUEUE not in _code_names(handle):
        raise _fail("RTCRtpReceiver no longer hands encoded frames over on __decoder_queue")
    pli = getattr(receiver_class, "_send_rtcp_pli", None)
    if not inspect.iscoroutinefunction(pli):
        raise _fail("RTCRtpReceiver._send_rtcp_pli is missing or not a coroutine")
    if list(inspect.signature(pli).parameters) != ["self", "media_ssrc"]:
        raise _fail(f"RTCRtpReceiver._send_rtcp_pli{inspect.signature(pli)} takes other arguments")
    if list(inspect.signature(frame_class).parameters)[:2] != ["data", "timestamp"]:
        raise _fail("JitterFrame no longer carries (data, timestamp)")
    check_sender(sender_class)


def check_sender(sender_class: type[Any] = RTCRtpSender) -> None:
    """Raise `IncompatibleAiortc` unless a sender still asks its `__encoder` to `pack()`
    each frame that is not a raw `av.Frame` (what `send_packetized` relies on)."""
    init = getattr(sender_class, "__init__", None)
    next_frame = getattr(sender_class, "_next_encoded_frame", None)
    run = getattr(sender_class, "_run_rtp", None)
    if (
        _ENCODER not in _code_names(init)
        or not {_ENCODER, "pack"} <= set(_code_names(next_frame))
        or "_next_encoded_frame" not in _code_names(run)
    ):
        raise _fail("RTCRtpSender no longer packs each frame with its __encoder")


class _EncodedFrameTap(queue.Queue[Any]):
    """Stands in for an `RTCRtpReceiver`'s decoder queue.

    aiortc puts `(codec, JitterFrame)` on that queue from the event loop, and `None`
    to stop its decoder thread. Frames go to `sink` instead; `None` goes through, so
    the (idle) decoder thread still ends when the receiver stops.
    """

    def __init__(self, receiver: Any, sink: EncodedFrameSink) -> None:
        super().__init__()
        self._receiver = receiver
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(item, block, timeout)
            return
        codec, frame = item
        try:
            self._sink(self._receiver, codec.name, frame.data, frame.timestamp)
        except Exception:
            log.exception("encoded frame handling failed codec=%s", codec.name)


def tap_encoded_frames(receiver: Any, sink: EncodedFrameSink) -> None:
    """Route `receiver`'s reassembled frames to `sink(receiver, codec, data, rtp_ts)`.

    Must run before the receiver starts (before `setLocalDescription` completes the
    connection), so aiortc's decoder thread never sees a frame; H.264 is then never
    decoded. Raises `IncompatibleAiortc` when this receiver has no decoder queue.
    """
    if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
        raise _fail("this RTCRtpReceiver has no decoder queue to tap")
    setattr(receiver, _DECODER_QUEUE, _EncodedFrameTap(receiver, sink))


async def send_picture_loss(receiver: Any, media_ssrc: int) -> None:
    """Send an RTCP picture loss indication (RFC 4585 6.3.1) for `media_ssrc`.

    aiortc itself drops the packet when the transport is already closed.
    """
    await receiver._send_rtcp_pli(media_ssrc)


@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """One encoded frame as RTP payloads, made once and shared by every sender of it.

    `timestamp` is on the codec's RTP clock (90 kHz video, 48 kHz Opus); each sender
    adds its own random origin, sequence numbers and SSRC.
    """

    payloads: list[bytes]
    timestamp: int
    keyframe: bool = False


class _Packetized:
    """Stands in for an `RTCRtpSender`'s encoder: the frames arrive packetized."""

    def pack(self, frame: PacketizedFrame) -> tuple[list[bytes], int]:
        return frame.payloads, frame.timestamp


def send_packetized(sender: Any) -> None:
    """Make `sender` send `PacketizedFrame`s from its track as they are, with no encoder.

    Must run before the sender starts (before the connection completes). The track's
    `recv()` then returns `PacketizedFrame`s. Raises `IncompatibleAiortc` when this
    sender has no encoder slot to fill.
    """
    if not hasattr(sender, _ENCODER):
        raise _fail("this RTCRtpSender has no encoder slot")
    setattr(sender, _ENCODER, _Packetized())
