"""FLV container framing: the file header and tag headers around `MediaTag` bodies (ingest).

Sans-IO: `FlvReader.feed` takes bytes in any chunking and returns whole tags;
`encode_header`/`encode_tag`/`FlvWriter` produce the bytes ffmpeg reads on stdin
and recordings write to disk. Tag bodies are passed through untouched; their
contents are `golive.formats.codecs`' business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from golive.formats.tag import MediaTag, TagType

HEADER_SIZE = 9
TAG_HEADER_SIZE = 11
PREVIOUS_TAG_SIZE = 4
MAX_BODY_SIZE = 0xFFFFFF  # DataSize is a UI24
DEFAULT_MAX_TAG_SIZE = 16 * 1024 * 1024

_SIGNATURE = b"FLV"
_FLAG_AUDIO = 0x04
_FLAG_VIDEO = 0x01
# A DataOffset beyond this is not a real FLV file (every writer uses 9).
_MAX_DATA_OFFSET = 1024
_TAG_TYPES = {int(t): t for t in TagType}


class FlvError(ValueError):
    """The bytes are not a well-formed FLV stream; the reader cannot continue."""


@dataclass(frozen=True, slots=True)
class FlvHeader:
    """What the 9-byte file header declares (informational: players ignore the flags)."""

    version: int
    has_audio: bool
    has_video: bool


def encode_header(*, audio: bool, video: bool) -> bytes:
    """The FLV file header followed by PreviousTagSize0 (13 bytes)."""
    flags = (_FLAG_AUDIO if audio else 0) | (_FLAG_VIDEO if video else 0)
    return _SIGNATURE + bytes((1, flags)) + struct.pack(">II", HEADER_SIZE, 0)


def encode_tag(tag: MediaTag) -> bytes:
    """One tag: the 11-byte header, the body, then PreviousTagSize.

    The timestamp is taken modulo 2**32 (it wraps, like RTMP's); the upper byte goes
    into TimestampExtended.
    """
    size = len(tag.body)
    if size > MAX_BODY_SIZE:
        raise FlvError(f"tag body of {size} bytes does not fit FLV's 24-bit DataSize")
    ts = tag.timestamp & 0xFFFFFFFF
    header = (
        bytes((int(tag.type),))
        + size.to_bytes(3, "big")
        + (ts & 0xFFFFFF).to_bytes(3, "big")
        + bytes((ts >> 24, 0, 0, 0))  # TimestampExtended, then StreamID 0
    )
    return header + tag.body + struct.pack(">I", TAG_HEADER_SIZE + size)


class FlvWriter:
    """Turns tags into an FLV byte stream; the file header comes out with the first call."""

    def __init__(self, *, audio: bool = True, video: bool = True) -> None:
        self._audio = audio
        self._video = video
        self._header_sent = False

    @property
    def header_sent(self) -> bool:
        return self._header_sent

    def header(self) -> bytes:
        """The file header if it has not gone out yet, else nothing."""
        if self._header_sent:
            return b""
        self._header_sent = True
        return encode_header(audio=self._audio, video=self._video)

    def write(self, tag: MediaTag) -> bytes:
        return self.header() + encode_tag(tag)

    def write_many(self, tags: list[MediaTag]) -> bytes:
        return self.header() + b"".join(encode_tag(tag) for tag in tags)


class FlvReader:
    """Parses an FLV byte stream fed in arbitrary pieces.

    Checks the signature, the header's DataOffset, every tag header (known tag type,
    no encryption filter, zero stream id), the declared size against `max_tag_size`
    and every PreviousTagSize. After the first `FlvError` the reader is dead: every
    later `feed` raises again, because the framing can no longer be trusted.
    Memory is bounded: at most one incomplete tag is buffered.
    """

    def __init__(self, *, max_tag_size: int = DEFAULT_MAX_TAG_SIZE) -> None:
        if max_tag_size <= 0:
            raise ValueError("max_tag_size must be positive")
        self.max_tag_size = min(max_tag_size, MAX_BODY_SIZE)
        self._buf = bytearray()
        self._header: FlvHeader | None = None
        self._skip_header_bytes = 0
        self._started = False  # PreviousTagSize0 consumed
        self._error: FlvError | None = None
        self.tags_read = 0
        self.bytes_read = 0

    @property
    def header(self) -> FlvHeader | None:
        return self._header

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a tag."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[MediaTag]:
        """Take more bytes; return every tag they complete, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        self.bytes_read += len(data)
        try:
            return self._parse()
        except FlvError as exc:
            self._error = exc
            self._buf.clear()
            raise

    def _parse(self) -> list[MediaTag]:
        buf = self._buf
        pos = 0
        tags: list[MediaTag] = []
        try:
            if self._header is None:
                if len(buf) < HEADER_SIZE:
                    self._check_signature_prefix()
                    return tags
                self._header = self._parse_header(bytes(buf[:HEADER_SIZE]))
                pos = HEADER_SIZE
            if self._skip_header_bytes:
                skip = min(self._skip_header_bytes, len(buf) - pos)
                pos += skip
                self._skip_header_bytes -= skip
                if self._skip_header_bytes:
                    return tags
            while True:
                if not self._started:
                    # PreviousTagSize0 straight after the header.
                    if len(buf) - pos < PREVIOUS_TAG_SIZE:
                        return tags
                    previous = int.from_bytes(buf[pos : pos + 4], "big")
                    if previous != 0:
                        raise FlvError(f"PreviousTagSize0 is {previous}, expected 0")
                    pos += PREVIOUS_TAG_SIZE
                    self._started = True
                if len(buf) - pos < TAG_HEADER_SIZE:
                    return tags
                first = buf[pos]
                if first & 0xC0:
                    raise FlvError(f"reserved bits set in tag header byte 0x{first:02x}")
                if first & 0x20:
                    raise FlvError("encrypted FLV tags (Filter bit) are not supported")
                tag_type = _TAG_TYPES.get(first & 0x1F)
                if tag_type is None:
                    raise FlvError(f"unknown FLV tag type {first & 0x1F}")
                size = int.from_bytes(buf[pos + 1 : pos + 4], "big")
                if size > self.max_tag_size:
                    raise FlvError(
                        f"tag of {size} bytes exceeds the {self.max_tag_size}-byte limit"
                    )
                stream_id = int.from_bytes(buf[pos + 8 : pos + 11], "big")
                if stream_id != 0:
                    raise FlvError(f"tag StreamID is {stream_id}, expected 0")
                end = pos + TAG_HEADER_SIZE + size
                if len(buf) < end + PREVIOUS_TAG_SIZE:
                    return tags
                timestamp = int.from_bytes(buf[pos + 4 : pos + 7], "big") | (buf[pos + 7] << 24)
                previous = int.from_bytes(buf[end : end + 4], "big")
                if previous != TAG_HEADER_SIZE + size:
                    raise FlvError(
                        f"PreviousTagSize is {previous}, expected {TAG_HEADER_SIZE + size}"
                    )
                body = bytes(memoryview(buf)[pos + TAG_HEADER_SIZE : end])
                tags.append(MediaTag(tag_type, timestamp, body))
                self.tags_read += 1
                pos = end + PREVIOUS_TAG_SIZE
        finally:
            if pos:
                del buf[:pos]

    def _check_signature_prefix(self) -> None:
        prefix = bytes(self._buf[:3])
        if not _SIGNATURE.startswith(prefix):
            raise FlvError(f"not an FLV stream: starts with {prefix!r}")

    def _parse_header(self, header: bytes) -> FlvHeader:
        if header[:3] != _SIGNATURE:
            raise FlvError(f"not an FLV stream: starts with {header[:3]!r}")
        version = header[3]
        if version != 1:
            raise FlvError(f"unsupported FLV version {version}")
        flags = header[4]
        offset = int.from_bytes(header[5:9], "big")
        if offset < HEADER_SIZE or offset > _MAX_DATA_OFFSET:
            raise FlvError(f"FLV header DataOffset {offset} is invalid")
        self._skip_header_bytes = offset - HEADER_SIZE
        return FlvHeader(
            version=version,
            has_audio=bool(flags & _FLAG_AUDIO),
            has_video=bool(flags & _FLAG_VIDEO),
        )
