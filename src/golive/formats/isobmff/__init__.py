"""Fragmented MP4 (ISO-BMFF / CMAF) reading for the packager and WHEP (packaging).

`FragmentReader` splits a byte stream into `InitSegment`s and `Fragment`s;
`fragment_samples` reads a fragment's samples; `plan_progressive` turns an init and
its fragments into a progressive (moov-first) MP4 served by byte range. Beneath them: `boxes` (box walking),
`init` (tracks and codec strings), `fragments` (the splitter and fragment timing)
and `samples` (the one traf/trun reader).
"""

from golive.formats.isobmff.boxes import MAX_BOX_SIZE, IsobmffError
from golive.formats.isobmff.fragments import Fragment, FragmentReader, PartJoiner
from golive.formats.isobmff.init import InitSegment, TrackInfo, video_decoder_config
from golive.formats.isobmff.progressive import ProgressiveMp4, Span, plan_progressive
from golive.formats.isobmff.samples import Sample, fragment_samples

__all__ = [
    "MAX_BOX_SIZE",
    "Fragment",
    "FragmentReader",
    "InitSegment",
    "IsobmffError",
    "PartJoiner",
    "ProgressiveMp4",
    "Sample",
    "Span",
    "TrackInfo",
    "fragment_samples",
    "plan_progressive",
    "video_decoder_config",
]
