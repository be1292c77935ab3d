"""The third-party adapters: each check passes on the installed (pinned) versions and fails
loudly on a stand-in that lacks the internal it relies on."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import types
from types import SimpleNamespace
from typing import Any, cast

import aioice.ice
import pytest
from aiortc import MediaStreamTrack, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from golive.chat.transport import (
    IncompatibleUvicorn,
    chat_websocket_protocol,
    check_uvicorn,
)
from golive.webrtc.aiortc_adapter import (
    IncompatibleAiortc,
    PacketizedFrame,
    check_aiortc,
    check_sender,
    send_packetized,
    send_picture_loss,
    tap_encoded_frames,
)
from golive.webrtc.ice import (
    IncompatibleAioice,
    check_aioice,
    gather_on,
    install_host_address_hook,
)

# aiortc ----------------------------------------------------------------------------------


class _Transport:
    """Just enough of an RTCDtlsTransport for a receiver to be built and send RTCP."""

    state = "new"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


def test_aiortc_check_passes_on_the_installed_version() -> None:
    check_aiortc()


def test_aiortc_check_fails_without_the_decoder_queue() -> None:
    class Receiver:
        def __init__(self) -> None:
            self.frames: list[Any] = []

        def _handle_rtp_packet(self) -> None:
            self.frames.append(None)

        async def _send_rtcp_pli(self, media_ssrc: int) -> None: ...

    with pytest.raises(IncompatibleAiortc, match=r"__decoder_queue.*tested with aiortc 1\.16"):
        check_aiortc(Receiver)


def test_aiortc_check_fails_when_the_keyframe_request_moves() -> None:
    class Receiver(RTCRtpReceiver):
        _send_rtcp_pli = None  # type: ignore[assignment]

    with pytest.raises(IncompatibleAiortc, match="_send_rtcp_pli"):
        check_aiortc(Receiver)

    class Renamed(RTCRtpReceiver):
        async def _send_rtcp_pli(self, ssrc: int, reason: str) -> None:  # type: ignore[override]
            ...

    with pytest.raises(IncompatibleAiortc, match="_send_rtcp_pli"):
        check_aiortc(Renamed)


def test_aiortc_check_fails_when_jitter_frames_change_shape() -> None:
    class Frame:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

    with pytest.raises(IncompatibleAiortc, match="JitterFrame"):
        check_aiortc(RTCRtpReceiver, Frame)


async def test_the_tap_takes_a_real_receivers_frames() -> None:
    receiver = RTCRtpReceiver("video", cast(Any, _Transport()))
    seen: list[tuple[Any, str, bytes, int]] = []
    tap_encoded_frames(receiver, lambda *frame: seen.append(frame))
    decoder_queue = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
    decoder_queue.put((SimpleNamespace(name="H264"), JitterFrame(b"\x00\x00\x01\x65", 9000)))
    decoder_queue.put(None)  # the stop signal still reaches the decoder thread
    assert seen == [(receiver, "H264", b"\x00\x00\x01\x65", 9000)]
    assert decoder_queue.get_nowait() is None


def test_the_tap_refuses_a_receiver_without_a_decoder_queue() -> None:
    with pytest.raises(IncompatibleAiortc, match="decoder queue"):
        tap_encoded_frames(SimpleNamespace(), lambda *frame: None)


async def test_a_keyframe_request_goes_out_as_an_rtcp_pli() -> None:
    transport = _Transport()
    receiver = RTCRtpReceiver("video", cast(Any, transport))
    receiver._set_rtcp_ssrc(1)
    await send_picture_loss(receiver, 1234)
    [packet] = transport.sent
    assert packet[0] & 0x1F == 1 and packet[1] == 206  # FMT 1 (PLI), PT 206 (PSFB)
    assert int.from_bytes(packet[8:12], "big") == 1234


async def test_a_failing_keyframe_request_is_not_swallowed() -> None:
    class Broken:
        async def _send_rtcp_pli(self, media_ssrc: int) -> None:
            raise OSError("socket gone")

    with pytest.raises(OSError, match="socket gone"):
        await asyncio.wait_for(send_picture_loss(Broken(), 1), timeout=10)


def test_aiortc_check_fails_when_senders_stop_packing_with_their_encoder() -> None:
    class Sender(RTCRtpSender):
        async def _next_encoded_frame(self, codec: Any) -> None:  # encodes some other way
            return None

    with pytest.raises(IncompatibleAiortc, match="__encoder"):
        check_sender(Sender)
    with pytest.raises(IncompatibleAiortc, match="__encoder"):
        check_aiortc(sender_class=Sender)
    with pytest.raises(IncompatibleAiortc, match="encoder slot"):
        send_packetized(SimpleNamespace())


class _Frames(MediaStreamTrack):
    kind = "video"

    def __init__(self, frame: PacketizedFrame) -> None:
        super().__init__()
        self.frame = frame

    async def recv(self) -> PacketizedFrame:  # type: ignore[override]
        return self.frame


async def test_a_packetized_sender_sends_the_payloads_it_is_given() -> None:
    frame = PacketizedFrame([b"\x7c\x85first", b"\x7c\x45last"], 180_000, keyframe=True)
    sender = RTCRtpSender(_Frames(frame), cast(Any, _Transport()))
    send_packetized(sender)
    codec = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90_000, payloadType=102)
    encoded = await sender._next_encoded_frame(codec)
    assert encoded is not None
    assert encoded.payloads is frame.payloads and encoded.timestamp == 180_000


# aioice ----------------------------------------------------------------------------------


def test_aioice_check_passes_on_the_installed_version() -> None:
    check_aioice()


def test_aioice_check_fails_on_a_module_without_the_function() -> None:
    fake = types.ModuleType("aioice.ice")
    fake.Connection = aioice.ice.Connection  # type: ignore[attr-defined]
    with pytest.raises(IncompatibleAioice, match=r"tested with aioice 0\.13"):
        check_aioice(fake)


def test_aioice_check_fails_when_gathering_no_longer_calls_it() -> None:
    fake = types.ModuleType("aioice.ice")

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return []

    class Connection:
        async def gather_candidates(self) -> list[str]:
            return []

    fake.get_host_addresses = get_host_addresses  # type: ignore[attr-defined]
    fake.Connection = Connection  # type: ignore[attr-defined]
    with pytest.raises(IncompatibleAioice, match="gather_candidates"):
        check_aioice(fake)


def test_aioice_check_fails_on_another_signature() -> None:
    fake = types.ModuleType("aioice.ice")

    def get_host_addresses(families: int) -> list[str]:
        return []

    fake.get_host_addresses = get_host_addresses  # type: ignore[attr-defined]
    fake.Connection = aioice.ice.Connection  # type: ignore[attr-defined]
    with pytest.raises(IncompatibleAioice):
        check_aioice(fake)


def test_gather_on_refuses_to_run_before_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    install_host_address_hook()
    install_host_address_hook()  # a second call changes nothing
    with gather_on(["127.0.0.1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]

    def unhooked(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return []

    monkeypatch.setattr(aioice.ice, "get_host_addresses", unhooked)
    with pytest.raises(RuntimeError, match="install_host_address_hook"), gather_on(["127.0.0.1"]):
        pass


# uvicorn (chat's fast path) ----------------------------------------------------------------


def test_uvicorn_check_passes_on_the_installed_version() -> None:
    check_uvicorn(WebSocketsSansIOProtocol)
    assert issubclass(chat_websocket_protocol(), WebSocketsSansIOProtocol)


def test_uvicorn_check_fails_on_a_protocol_without_the_state_it_uses() -> None:
    class Protocol:
        def __init__(self) -> None:
            self.transport = None

        def handle_connect(self, event: Any) -> None:
            self.scope: dict[str, Any] = {}

    with pytest.raises(IncompatibleUvicorn, match=r"close_sent.*tested with uvicorn 0\.55"):
        check_uvicorn(Protocol)


def test_without_uvicorns_sansio_protocol_chat_falls_back_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes the import raise ImportError, as on uvicorn < 0.35.
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.websockets.websockets_sansio_impl", None)
    with caplog.at_level(logging.ERROR, logger="golive.chat.transport"):
        protocol = chat_websocket_protocol()
    assert isinstance(protocol, type)
    assert protocol.__name__ != "ChatWebSocketProtocol"
    assert "chat fast path off" in caplog.text


def test_the_node_imports_without_uvicorns_sansio_protocol() -> None:
    code = (
        "import sys\n"
        "sys.modules['uvicorn.protocols.websockets.websockets_sansio_impl'] = None\n"
        "import golive.app\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
