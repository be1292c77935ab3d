"""golive: self-hosted live streaming (RTMP/SRT/WHIP in, LL-HLS/WebRTC out)."""

__version__ = "0.1.0"
