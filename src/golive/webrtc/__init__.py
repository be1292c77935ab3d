"""What WHIP ingest and WHEP playback share (webrtc): ICE options and host addresses,
SDP inspection, the RTP receive tap, packetized sending and the Opus/AAC bridge."""

from golive.webrtc.aiortc_adapter import PacketizedFrame, check_aiortc, send_packetized
from golive.webrtc.ice import (
    WebRtcOptions,
    advertise_public_address,
    gather_on,
    install_host_address_hook,
    is_mdns_name,
    without_mdns_candidates,
)
from golive.webrtc.receive import MediaConverter, tap_encoded_frames
from golive.webrtc.sdp import (
    MAX_OFFER_BYTES,
    MAX_REMOTE_CANDIDATES,
    SDP,
    OfferSummary,
    SignalingError,
    inspect_offer,
    media_type,
    read_text,
)

__all__ = [
    "MAX_OFFER_BYTES",
    "MAX_REMOTE_CANDIDATES",
    "SDP",
    "MediaConverter",
    "OfferSummary",
    "PacketizedFrame",
    "SignalingError",
    "WebRtcOptions",
    "advertise_public_address",
    "check_aiortc",
    "gather_on",
    "inspect_offer",
    "install_host_address_hook",
    "is_mdns_name",
    "media_type",
    "read_text",
    "send_packetized",
    "tap_encoded_frames",
    "without_mdns_candidates",
]
