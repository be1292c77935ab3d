"""The packaging stage: each rendition's fragments as LL-HLS parts and segments, and playlists.

`window` holds one rendition's recent parts and segments in a bounded window and
renders its media playlist; `presentation` groups a broadcast's renditions under a
playback id (multivariant playlist, rendition reports); `clock` is the wall clock
both take from the composition root. Nothing here knows HTTP or another stage.
"""

from golive.packaging.clock import WallClock
from golive.packaging.presentation import Presentation
from golive.packaging.window import RenditionWindow

__all__ = [
    "Presentation",
    "RenditionWindow",
    "WallClock",
]
