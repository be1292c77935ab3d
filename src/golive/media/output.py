"""What else may consume a transcoder output besides the packager (stage: media).

The WebRTC-safe output (`command.WEBRTC_OUTPUT`) is not packaged into HLS; it goes
to sinks the composition root registers. media/ only knows this protocol, so a
sink from a later stage (WHEP in delivery/) plugs in without media/ importing it.
"""

from __future__ import annotations

from typing import Protocol

from golive.formats import Fragment, InitSegment

__all__ = ["OutputSink"]


class OutputSink(Protocol):
    """A consumer of one transcoder output; called on the event loop, must not block.

    An init segment comes first and again after every ffmpeg restart (a new
    timeline); fragments follow their init; `close` is called once when the
    broadcast ends and nothing more follows.
    """

    def on_init(self, init: InitSegment) -> None: ...

    def on_fragment(self, fragment: Fragment) -> None: ...

    def close(self) -> None: ...
