"""What WHIP ingest and WHEP playback share (webrtc): ICE options and host addresses,
SDP inspection, the RTP receive tap and the Opus/AAC bridge."""
