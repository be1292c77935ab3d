"""What a WHIP session's RTP receivers hand over, turned into one FLV timeline (ingest).

aiortc reassembles each track's RTP packets into encoded frames (its jitter buffer
and depacketizers) and then decodes them on a thread per track. golive needs the
encoded frames, not pictures: `tap_encoded_frames` takes them at the point where
aiortc queues them for its decoder (`golive.webrtc.aiortc_adapter`, the one place
that touches aiortc internals), so H.264 is never decoded. Opus and VP8 go to
`MediaConverter`'s worker thread (`golive.webrtc.transcode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from golive.formats import AnnexBToFlv, MediaTag
from golive.webrtc.aiortc_adapter import (
    EncodedFrameSink,
    send_picture_loss,
    tap_encoded_frames,
)

__all__ = ["EncodedFrameSink", "MediaConverter", "request_keyframe", "tap_encoded_frames"]

log = logging.getLogger(__name__)

# aiortc's audio jitter buffer hands a frame over once 4 more have arrived: the first
# Opus frame is that much older than the moment it shows up (20 ms per frame).
_AUDIO_HOLD_MS = 80.0
_PLI_INTERVAL = 1.0
_WORK_QUEUE = 256


async def request_keyframe(receiver: Any) -> None:
    """Ask the publisher of `receiver`'s stream for a keyframe (a picture loss indication)."""
    sources = receiver.getSynchronizationSources()
    if sources:
        await send_picture_loss(receiver, sources[0].source)


class MediaConverter:
    """One publisher's encoded frames in, FLV tags on one millisecond timeline out.

    The timeline starts at the first frame of any track; each track's RTP clock is
    anchored where its first frame arrived (audio corrected for aiortc's jitter
    buffer hold). Sub-frame lip sync would need RTCP sender reports; arrival anchoring
    is within a frame or two on a healthy network.
    """

    def __init__(self, emit: Callable[[MediaTag], None], *, label: str = "") -> None:
        self._emit = emit
        self._label = label
        self._loop = asyncio.get_running_loop()
        self._epoch: float | None = None
        self._origins: dict[str, float] = {}
        self._h264 = AnnexBToFlv()
        self._converters: dict[str, Any] = {}
        self._work: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue(_WORK_QUEUE)
        self._worker: threading.Thread | None = None
        self._last_pli = 0.0
        self._pli_task: asyncio.Task[None] | None = None
        self._closed = False
        self.frames = 0
        self.dropped = 0
        self.last_frame_at = time.monotonic()
        self.video_codec: str | None = None
        self.audio_codec: str | None = None

    # Called on the event loop by the tap ---------------------------------------------

    def on_frame(self, receiver: Any, codec: str, data: bytes, rtp_timestamp: int) -> None:
        if self._closed:
            return
        now = time.monotonic()
        self.last_frame_at = now
        self.frames += 1
        name = codec.lower()
        origin = self._origin(name, now)
        if name == "h264":
            self.video_codec = "h264"
            verdict = self._h264.push(data, max(0, round(origin + rtp_timestamp / 90)))
            for tag in verdict.tags:
                self._emit(tag)
            if verdict.need_keyframe:
                self._want_keyframe(receiver, now)
        elif name in ("opus", "vp8"):
            if name == "vp8":
                self.video_codec = "vp8"
            else:
                self.audio_codec = "opus"
            self._start_worker()
            try:
                self._work.put_nowait((name, data, rtp_timestamp))
            except queue.Full:
                self.dropped += 1
                if name == "vp8":
                    self._want_keyframe(receiver, now)
        # Other codecs (PCMU/PCMA) are never negotiated: see whip.py's preferences.

    def _origin(self, name: str, now: float) -> float:
        origin = self._origins.get(name)
        if origin is None:
            if self._epoch is None:
                self._epoch = now
            origin = (now - self._epoch) * 1000
            if name == "opus":
                origin = max(0.0, origin - _AUDIO_HOLD_MS)
            self._origins[name] = origin
        return origin

    def _want_keyframe(self, receiver: Any, now: float) -> None:
        if now - self._last_pli < _PLI_INTERVAL:
            return
        if self._pli_task is not None and not self._pli_task.done():
            return
        self._last_pli = now
        self._pli_task = self._loop.create_task(request_keyframe(receiver))
        self._pli_task.add_done_callback(self._keyframe_requested)

    def _keyframe_requested(self, task: asyncio.Task[None]) -> None:
        # Without keyframe requests a publisher's loss is never repaired: say so loudly.
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("keyframe request failed stream=%s", self._label, exc_info=error)

    # Worker thread: Opus -> AAC, VP8 -> H.264 -------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._run, name=f"whip-media-{self._label}", daemon=True
            )
            self._worker.start()

    def _run(self) -> None:
        from golive.webrtc.transcode import OpusToAac, Vp8ToH264

        while True:
            item = self._work.get()
            if item is None:
                return
            name, data, rtp_timestamp = item
            converter = self._converters.get(name)
            try:
                if converter is None:
                    origin = self._origins[name]
                    converter = OpusToAac(origin) if name == "opus" else Vp8ToH264(origin)
                    self._converters[name] = converter
                tags = converter.push(data, rtp_timestamp)
            except Exception:
                log.exception("media conversion failed stream=%s codec=%s", self._label, name)
                continue
            if tags:
                try:
                    self._loop.call_soon_threadsafe(self._emit_all, tags)
                except RuntimeError:  # the loop is closed: the node is gone
                    return

    def _emit_all(self, tags: list[MediaTag]) -> None:
        if self._closed:
            return
        for tag in tags:
            self._emit(tag)

    def close(self) -> None:
        """Stop converting; the worker thread ends after the frame it is on."""
        if self._closed:
            return
        self._closed = True
        if self._pli_task is not None:
            self._pli_task.cancel()
        if self._worker is not None:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._work.get_nowait()
            self._work.put_nowait(None)
