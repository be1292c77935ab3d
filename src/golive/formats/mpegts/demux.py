"""MPEG-TS demuxing into FLV-shaped media: what SRT publishers send, as RTMP tags (ingest).

Sans-IO: `TsDemuxer.feed` takes transport-stream bytes in any chunking and returns
`MediaTag`s shaped exactly like an RTMP publisher's (AVC and AAC as legacy FLV tags,
HEVC as Enhanced RTMP "hvc1"), so the broadcast hub and the transcoder treat an SRT
publish exactly like an RTMP one. It follows the first program of the PAT, takes
that program's first H.264/HEVC stream and first audio stream it can read (AAC in ADTS
or LATM, MPEG audio, AC-3, E-AC-3, mono or stereo Opus), and ignores the rest. Packets,
PSI and PES are read by the sibling modules; this one keeps the timeline and turns
access units and audio frames into tags. Damaged input is counted
in `TsDemuxer.stats` and skipped; `feed` does not raise for anything a publisher sends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from golive.formats.annexb import split_annexb
from golive.formats.codecs import (
    LOAS_HEADER,
    CodecError,
    FrameHeader,
    LatmReader,
    LatmUnsupported,
    ac3_frame,
    avc_decoder_config,
    eac3_frame,
    hevc_decoder_config,
    loas_length,
    mpeg_audio_frame,
    parse_audio_specific_config,
)
from golive.formats.mpegts.packets import (
    NULL_PID,
    PACKET_SIZE,
    PAT_PID,
    SYNC_BYTE,
    Continuity,
    PidState,
    read_packet,
)
from golive.formats.mpegts.pes import Pes, PesTrack
from golive.formats.mpegts.psi import (
    STREAM_TYPE_AAC_ADTS,
    STREAM_TYPE_AAC_LATM,
    STREAM_TYPE_AC3,
    STREAM_TYPE_EAC3,
    STREAM_TYPE_H264,
    STREAM_TYPE_HEVC,
    STREAM_TYPE_MPEG1_AUDIO,
    STREAM_TYPE_MPEG2_AUDIO,
    TABLE_PAT,
    TABLE_PMT,
    ElementaryStream,
    Section,
    parse_pat,
    parse_pmt,
)
from golive.formats.mpegts.stats import TsStats
from golive.formats.tag import MediaTag, TagType

DEFAULT_MAX_PES_SIZE = 8 * 1024 * 1024
DEFAULT_AUDIO_LEAD_MS = 500

_TICKS_PER_MS = 90
_PTS_WRAP = 1 << 33
_PTS_MASK = _PTS_WRAP - 1
_MAX_ADTS_FRAME = 8191  # 13-bit frame_length
_AAC_FRAME_SAMPLES = 1024
_MAX_FLV_BODY = 0xFFFFFF
# Audio queued while waiting for the first video keyframe; a hard cap on top of the
# time window, against hostile timestamps.
_MAX_QUEUED_AUDIO = 512
# Audio stream types golive does not take, by name (what an alert tells the operator).
_AUDIO_NAMES = {
    0x1C: "MPEG-4 audio without ADTS", 0x80: "LPCM", 0x82: "DTS", 0x86: "DTS",
    0x83: "Dolby TrueHD",
}
# Video stream types golive does not take, by name (DVB's SD services are MPEG-2 video).
_VIDEO_NAMES = {
    0x01: "MPEG-1 video", 0x02: "MPEG-2 video", 0x10: "MPEG-4 Part 2 video",
    0x21: "JPEG 2000 video", 0x33: "VVC (H.266) video", 0x42: "AVS video",
    0xD1: "Dirac video", 0xD2: "AVS2 video", 0xD4: "AVS3 video", 0xEA: "VC-1 video",
}
_MAX_FRAMED_AUDIO = 16384  # bytes a non-AAC frame may span (AC-3: 3,840; Opus: 120 ms)
_OPUS_RATE = 48000


def _audio_name(es: ElementaryStream) -> str | None:
    if es.registration == b"Opus":  # (a private PES: subtitles, teletext... are too)
        return "Opus with more than two channels"
    return _AUDIO_NAMES.get(es.stream_type)


def _video_name(es: ElementaryStream) -> str | None:
    return _VIDEO_NAMES.get(es.stream_type)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One audio access unit found in a PES payload (`samples` 0: one to pass over)."""

    length: int  # bytes, its framing included
    start: int  # where the codec's frame starts in it
    samples: int
    rate: int
    config: bytes | None = None  # the sequence header tag's body, where the stream says it
    frame: bytes | None = None  # the codec's frame, where it is not bytes start:length
    damaged: bool = False  # framed whole, but what is inside does not read
    unsupported: str | None = None  # framed whole, in a form golive does not take: what


_Splitter = Callable[[bytes, int], _Unit | None]


def _whole_frames(header_at: Callable[[bytes, int], FrameHeader | None]) -> _Splitter:
    def unit(data: bytes, pos: int) -> _Unit | None:
        header = header_at(data, pos)
        if header is None:
            return None
        return _Unit(header.length, 0, header.samples, header.sample_rate)

    return unit


def _opus_unit(data: bytes, pos: int) -> _Unit | None:
    """One Opus access unit in MPEG-TS: its control header (the 11-bit prefix 0x3FF, trim
    and extension flags, the size as a run of 0xFF bytes and the rest), then the packet.
    One whose header runs past `data` asks for more (its length reaches past the end)."""
    end = len(data)
    more = _Unit(end - pos + 1, 0, 0, _OPUS_RATE)
    if data[pos] != 0x7F or data[pos + 1] & 0xE0 != 0xE0:
        return None
    flags = data[pos + 1]
    at = pos + 2
    size = 0
    while True:
        if at >= end:
            return more
        size += data[at]
        at += 1
        if data[at - 1] != 0xFF:
            break
    at += 2 * ((flags >> 4) & 1) + 2 * ((flags >> 3) & 1)  # start and end trims
    if flags & 0x04:  # control extension: its length, then its bytes
        if at >= end:
            return more
        at += 1 + data[at]
    if at + 2 > end:
        return more
    samples = _opus_samples(data, at, size)
    if samples is None:
        return None
    return _Unit(at - pos + size, at - pos, samples, _OPUS_RATE)


def _opus_samples(data: bytes, at: int, size: int) -> int | None:
    """An Opus packet's duration at 48 kHz from its TOC byte (RFC 6716 3.1)."""
    if size < 1:
        return None
    toc = data[at]
    config = toc >> 3
    if config < 12:
        frame = (480, 960, 1920, 2880)[config % 4]  # SILK: 10, 20, 40, 60 ms
    elif config < 16:
        frame = (480, 960)[config % 2]  # hybrid
    else:
        frame = (120, 240, 480, 960)[config % 4]  # CELT: 2.5 to 20 ms
    code = toc & 3
    count = 1 if code == 0 else 2 if code < 3 else (data[at + 1] & 0x3F if size > 1 else 0)
    if not count or frame * count > 5760:  # at most 120 ms a packet
        return None
    return frame * count


def _latm_units() -> _Splitter:
    """AAC in LATM over LOAS: each frame's AudioMuxElement read by one `LatmReader`, which
    keeps the StreamMuxConfig the frames between its repeats refer to."""
    reader = LatmReader()

    def unit(data: bytes, pos: int) -> _Unit | None:
        length = loas_length(data, pos)
        if length is None:
            return None
        if pos + length > len(data):
            return _Unit(length, 0, 0, 1)  # (asks for more)
        try:
            frame = reader.payload(data[pos + LOAS_HEADER : pos + length])
        except LatmUnsupported as refused:
            return _Unit(length, 0, 0, 1, damaged=True, unsupported=str(refused))
        except CodecError:
            return _Unit(length, 0, 0, 1, damaged=True)
        config = reader.config
        if frame is None or config is None:  # joined between StreamMuxConfigs
            return _Unit(length, 0, 0, 1)
        return _Unit(length, 0, config.frame_samples, config.core_rate,
                     b"\xaf\x00" + config.asc, frame)

    return unit


def _opus_head(channels: int) -> bytes:
    """RFC 7845 5.1's identification header: mapping family 0, no pre-skip known."""
    return b"OpusHead" + bytes((1, channels)) + (0).to_bytes(2, "little") \
        + _OPUS_RATE.to_bytes(4, "little") + bytes(3)


@dataclass(frozen=True, slots=True)
class _Framing:
    """How a non-AAC audio stream goes out: as Enhanced RTMP audio (SoundFormat 9 and a
    FourCC) for the transcoder's ffmpeg to decode, each frame cut by its own header."""

    config: bytes  # the sequence start tag's body
    prefix: bytes  # what each frame tag's body starts with
    split: _Splitter
    sync: bytes  # what a frame starts with, to find the next after damage


def _framing(es: ElementaryStream) -> _Framing | None:
    """MPEG-1/2 Layer I-III as ".mp3", AC-3 as "ac-3", E-AC-3 as "ec-3", mono or stereo
    Opus as "Opus"; AAC in LATM as legacy FLV AAC, as ADTS AAC goes (its sequence header
    from the stream's StreamMuxConfig)."""
    if es.stream_type == STREAM_TYPE_AAC_LATM:
        return _Framing(b"", b"\xaf\x01", _latm_units(), b"\x56")
    if es.stream_type in (STREAM_TYPE_MPEG1_AUDIO, STREAM_TYPE_MPEG2_AUDIO):
        return _Framing(b"\x90.mp3", b"\x91.mp3", _whole_frames(mpeg_audio_frame), b"\xff")
    if es.stream_type == STREAM_TYPE_AC3:
        return _Framing(b"\x90ac-3", b"\x91ac-3", _whole_frames(ac3_frame), b"\x0b\x77")
    if es.stream_type == STREAM_TYPE_EAC3:
        return _Framing(b"\x90ec-3", b"\x91ec-3", _whole_frames(eac3_frame), b"\x0b\x77")
    if es.opus_channels:
        return _Framing(b"\x90Opus" + _opus_head(es.opus_channels), b"\x91Opus", _opus_unit,
                        b"\x7f")
    return None


def _is_audio(es: ElementaryStream) -> bool:
    return es.stream_type == STREAM_TYPE_AAC_ADTS or _framing(es) is not None

_H264_AUD, _H264_SPS, _H264_PPS, _H264_IDR, _H264_FILLER = 9, 7, 8, 5, 12
_HEVC_VPS, _HEVC_SPS, _HEVC_PPS, _HEVC_AUD, _HEVC_FILLER = 32, 33, 34, 35, 38


class TsError(ValueError):
    """Reserved for misuse of the demuxer (bad arguments); stream content never raises it."""


@dataclass(frozen=True, slots=True)
class TsProgram:
    """The program being followed, as its latest PMT describes it."""

    program_number: int
    pmt_pid: int
    video: ElementaryStream | None
    audio: ElementaryStream | None
    ignored: tuple[ElementaryStream, ...]  # everything else the PMT lists

    @property
    def video_codec(self) -> str | None:
        if self.video is None:
            return None
        return "hevc" if self.video.stream_type == STREAM_TYPE_HEVC else "h264"

    @property
    def unsupported_audio(self) -> str | None:
        """The audio the PMT lists that cannot be taken, when none can be: what it is."""
        return None if self.audio is not None else self._first_named(_audio_name)

    @property
    def unsupported_video(self) -> str | None:
        """The video the PMT lists that cannot be taken, when none can be: what it is."""
        return None if self.video is not None else self._first_named(_video_name)

    def _first_named(self, name_of: Callable[[ElementaryStream], str | None]) -> str | None:
        for es in self.ignored:
            name = name_of(es)
            if name is not None:
                return f"{name} (stream type 0x{es.stream_type:02x})"
        return None
        for es in self.ignored:
            name = _VIDEO_NAMES.get(es.stream_type)
            if name is not None:
                return f"{name} (stream type 0x{es.stream_type:02x})"
        return None


class _VideoTrack(PesTrack):
    __slots__ = ("config", "emitted", "hevc", "last_delta", "last_dts", "param_key", "started")

    def __init__(self, es: ElementaryStream) -> None:
        super().__init__(es)
        self.hevc = es.stream_type == STREAM_TYPE_HEVC
        self.started = False
        self.param_key: tuple[tuple[bytes, ...], ...] = ((), (), ())  # vps, sps, pps
        self.config: bytes | None = None  # decoder configuration record of param_key
        self.emitted: bytes | None = None  # the last one sent as a sequence header
        self.last_dts: int | None = None
        self.last_delta = 3000  # ticks, to extrapolate an access unit without PTS


class _AudioTrack(PesTrack):
    __slots__ = ("configs", "emitted", "framing", "leftover", "next_ticks", "unsupported")

    def __init__(self, es: ElementaryStream) -> None:
        super().__init__(es)
        self.unsupported: str | None = None  # its frames are in a form golive does not take
        self.framing = _framing(es)  # None: AAC in ADTS
        self.leftover = b""  # a frame cut by the end of the previous PES
        self.next_ticks: int | None = None
        self.configs: dict[int, tuple[bytes, int] | None] = {}  # ADTS header bits -> ASC, rate
        self.emitted: bytes | None = None


@dataclass(frozen=True, slots=True)
class _QueuedAudio:
    ticks: int
    config: bytes  # the sequence header tag's body
    frame: bytes  # the frame tag's body


def _unique(units: list[bytes]) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys(units))


def _si24(value: int) -> bytes:
    return (max(-0x800000, min(0x7FFFFF, value)) & 0xFFFFFF).to_bytes(3, "big")


class TsDemuxer:
    """Turns a live MPEG transport stream into FLV-shaped `MediaTag`s.

    Timestamps of both tracks are unwrapped (33-bit PTS/DTS) onto one timeline in
    milliseconds that starts at 0 with the first keyframe (or, without video, the
    first audio frame), so A/V sync is kept. Nothing comes out before the first video
    keyframe whose parameter sets are known: audio that arrives earlier waits, and
    frames up to `audio_lead_ms` before that keyframe are kept.

    Video frames are AVCC (4-byte lengths) with access unit delimiters and filler
    data removed; SPS/PPS (and VPS) stay in band and also go out as a sequence
    header whenever they first appear or change. A video PES with length 0 ends at
    the next one, so each access unit comes out one PES late; `flush` releases the
    last one at the end of the stream.
    """

    def __init__(self, *, max_pes_size: int = DEFAULT_MAX_PES_SIZE,
                 audio_lead_ms: int = DEFAULT_AUDIO_LEAD_MS) -> None:
        if not 0 < max_pes_size <= _MAX_FLV_BODY - 64:
            raise TsError(f"max_pes_size must be between 1 and {_MAX_FLV_BODY - 64}")
        if audio_lead_ms < 0:
            raise TsError("audio_lead_ms must not be negative")
        self.max_pes_size = max_pes_size
        self._audio_lead = audio_lead_ms * _TICKS_PER_MS
        self.stats = TsStats()
        self.program: TsProgram | None = None
        self._buf = b""
        self._synced = False
        self._pat = Section(PAT_PID)
        self._pmt: Section | None = None
        self._program_number = 0
        self._video: _VideoTrack | None = None
        self._audio: _AudioTrack | None = None
        self._reference: int | None = None  # the last unwrapped timestamp, either track
        self._epoch = 0  # the highest multiple of 2**33 reached, for stats.timestamp_wraps
        self._base: int | None = None  # unwrapped ticks at output time 0
        self._queue: deque[_QueuedAudio] = deque()
        self._out: list[MediaTag] = []

    @property
    def unsupported_audio(self) -> str | None:
        """Audio golive cannot take, when it takes none: what the PMT lists, or the form
        the followed audio stream's frames turned out to be in (LATM's options)."""
        track = self._audio
        if track is not None and track.unsupported is not None:
            return f"{track.unsupported} (stream type 0x{track.stream_type:02x})"
        return self.program.unsupported_audio if self.program is not None else None

    @property
    def unsupported_video(self) -> str | None:
        """Video golive cannot take, when it takes none: what the PMT lists."""
        return self.program.unsupported_video if self.program is not None else None

    # ---------------------------------------------------------------- transport packets

    def feed(self, data: bytes | bytearray | memoryview) -> list[MediaTag]:
        """Take more bytes in any chunking; return the tags they complete, in order."""
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        view = memoryview(buf)
        size = len(buf)
        pos = 0
        while True:
            if not self._synced:
                pos = self._resync(buf, pos)
                if not self._synced:
                    break
            if size - pos < PACKET_SIZE:
                break
            if buf[pos] != SYNC_BYTE:
                self._synced = False
                self.stats.sync_losses += 1
                continue
            self._packet(view[pos : pos + PACKET_SIZE])
            pos += PACKET_SIZE
        view.release()
        self._buf = buf[pos:]
        return self._take()

    def flush(self) -> list[MediaTag]:
        """End of stream: finish the access units still waiting for their PES to end."""
        for track in (self._video, self._audio):
            if track is not None:
                self._pes(track, track.end(self.stats))
        return self._take()

    def _take(self) -> list[MediaTag]:
        out, self._out = self._out, []
        return out

    def _resync(self, buf: bytes, pos: int) -> int:
        """Find three sync bytes 188 apart; return where the packets start (or where to wait)."""
        start = pos
        size = len(buf)
        i = buf.find(SYNC_BYTE, pos)
        while i >= 0:
            if i + 2 * PACKET_SIZE >= size:
                break  # cannot confirm yet: keep the candidate for the next feed
            if buf[i + PACKET_SIZE] == SYNC_BYTE and buf[i + 2 * PACKET_SIZE] == SYNC_BYTE:
                self._synced = True
                break
            i = buf.find(SYNC_BYTE, i + 1)
        if i < 0:
            i = size
        self.stats.bytes_skipped += i - start
        return i

    def _packet(self, pkt: memoryview) -> None:
        stats = self.stats
        stats.packets += 1
        packet = read_packet(pkt)
        if packet.transport_error:
            stats.transport_errors += 1
            return
        if packet.pid == NULL_PID:
            return
        if packet.malformed:
            stats.malformed_packets += 1
            return
        state = self._state(packet.pid)
        if state is None:
            return
        if packet.scrambled:
            stats.scrambled_packets += 1
            return
        if not packet.has_payload:  # adaptation field only: the CC does not advance
            if packet.discontinuity:
                state.cc = None
            return
        continuity = state.advance(packet)
        if continuity is Continuity.DUPLICATE:
            stats.duplicate_packets += 1
            return
        if continuity is Continuity.GAP:
            stats.cc_errors += 1
            self._lost(state)
        payload = bytes(pkt[packet.payload_start :])
        pusi = packet.payload_unit_start
        if isinstance(state, Section):
            for section in state.push(payload, pusi, stats):
                self._section(state, section)
        elif isinstance(state, PesTrack):
            self._pes(state, state.push(payload, pusi, self.max_pes_size, stats))

    def _state(self, pid: int) -> PidState | None:
        if pid == PAT_PID:
            return self._pat
        if self._pmt is not None and pid == self._pmt.pid:
            return self._pmt
        if self._video is not None and pid == self._video.pid:
            return self._video
        if self._audio is not None and pid == self._audio.pid:
            return self._audio
        return None

    def _lost(self, state: PidState) -> None:
        """Packets went missing: whatever was being reassembled is damaged."""
        if isinstance(state, Section):
            state.reset()
        elif isinstance(state, PesTrack) and state.active:
            state.drop(self.stats)
            if isinstance(state, _AudioTrack):
                state.leftover = b""

    # ---------------------------------------------------------------- PSI: PAT and PMT

    def _section(self, section: Section, data: bytes) -> None:
        if section is self._pat and data[0] == TABLE_PAT:
            self._on_pat(data)
        elif section is self._pmt and data[0] == TABLE_PMT:
            self._on_pmt(data)

    def _on_pat(self, data: bytes) -> None:
        for number, pid in parse_pat(data):
            if number == 0 or pid in (PAT_PID, NULL_PID):
                continue  # network PID, or nonsense
            if self._pmt is None or self._pmt.pid != pid or self._program_number != number:
                self._pmt = Section(pid)
                self._program_number = number
            return

    def _on_pmt(self, data: bytes) -> None:
        assert self._pmt is not None
        pmt = parse_pmt(data)
        if pmt.program_number != self._program_number:
            return
        if pmt.truncated:
            self.stats.psi_errors += 1
        video: ElementaryStream | None = None
        audio: ElementaryStream | None = None
        ignored: list[ElementaryStream] = []
        unsupported = 0
        for es in pmt.streams:
            stream_type, pid = es.stream_type, es.pid
            if pid in (PAT_PID, NULL_PID, self._pmt.pid):
                ignored.append(es)
            elif video is None and stream_type in (STREAM_TYPE_H264, STREAM_TYPE_HEVC):
                video = es
            elif audio is None and _is_audio(es) and (video is None or video.pid != pid):
                audio = es
            else:
                ignored.append(es)
                if stream_type not in (STREAM_TYPE_H264, STREAM_TYPE_HEVC) \
                        and not _is_audio(es):
                    unsupported += 1
        program = TsProgram(self._program_number, self._pmt.pid, video, audio, tuple(ignored))
        if program == self.program:
            return
        self.program = program
        self.stats.unsupported_streams += unsupported
        # Audio waiting for the first keyframe belongs to the old layout.
        self.stats.audio_skipped += len(self._queue)
        self._queue.clear()
        track = self._video
        if video is None:
            self._video = None
        elif track is None or (track.pid, track.stream_type) != (video.pid, video.stream_type):
            self._video = _VideoTrack(video)
        atrack = self._audio
        if audio is None:
            self._audio = None
        elif atrack is None or (atrack.pid, atrack.stream_type) != (audio.pid, audio.stream_type):
            self._audio = _AudioTrack(audio)

    # ---------------------------------------------------------------- PES

    def _pes(self, track: PesTrack, packets: list[Pes]) -> None:
        for pes in packets:
            if isinstance(track, _VideoTrack):
                self._video_pes(track, pes.pts, pes.dts, pes.payload)
            elif isinstance(track, _AudioTrack):
                self._audio_pes(track, pes.pts, pes.payload)

    # ---------------------------------------------------------------- timestamps

    def _unwrap(self, raw: int) -> int:
        """Place a 33-bit timestamp on the unbounded timeline nearest the last one seen."""
        ref = self._reference
        if ref is None:
            self._reference = raw
            return raw
        ext = raw + ref - (ref & _PTS_MASK)
        if ext - ref > _PTS_WRAP // 2:
            ext -= _PTS_WRAP
        elif ref - ext > _PTS_WRAP // 2:
            ext += _PTS_WRAP
            # Tracks interleave across the wrap: count each epoch once, not each crossing.
            if ext >> 33 > self._epoch:
                self._epoch = ext >> 33
                self.stats.timestamp_wraps += 1
        self._reference = ext
        return ext

    def _ms(self, ticks: int) -> int:
        assert self._base is not None
        return (ticks - self._base + _TICKS_PER_MS // 2) // _TICKS_PER_MS

    def _start(self, first_ticks: int) -> None:
        """Fix time 0: the first keyframe, or queued audio shortly before it."""
        kept = [q for q in self._queue if q.ticks >= first_ticks - self._audio_lead]
        self.stats.audio_skipped += len(self._queue) - len(kept)
        self._queue = deque(kept)
        self._base = min([first_ticks, *(q.ticks for q in kept)])

    # ---------------------------------------------------------------- video

    def _video_pes(self, track: _VideoTrack, pts: int | None, dts: int | None,
                   payload: bytes) -> None:
        if pts is None or dts is None:
            if track.last_dts is None:
                self.stats.video_skipped += 1
                return
            dts_ticks = pts_ticks = track.last_dts + track.last_delta
        else:
            dts_ticks = self._unwrap(dts)
            offset = (pts - dts) & _PTS_MASK
            pts_ticks = dts_ticks + (offset - _PTS_WRAP if offset >= _PTS_WRAP // 2 else offset)
        if track.last_dts is not None and 0 < dts_ticks - track.last_dts <= 90_000:
            track.last_delta = dts_ticks - track.last_dts
        track.last_dts = dts_ticks

        keep: list[bytes] = []
        params: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
        key = has_slice = False
        # A PES joined or damaged mid-unit: what comes before the first start code
        # cannot be read, but the units after it can.
        first = payload.find(b"\x00\x00\x01")
        for nal in split_annexb(payload[first:]) if first >= 0 else ():
            if nal[0] & 0x80:  # forbidden_zero_bit: damaged
                continue
            if track.hevc:
                if len(nal) < 2:
                    continue
                nal_type = (nal[0] >> 1) & 0x3F
                if nal_type in (_HEVC_AUD, _HEVC_FILLER):
                    continue
                if _HEVC_VPS <= nal_type <= _HEVC_PPS:
                    params[nal_type - _HEVC_VPS].append(nal)
                elif nal_type < 32:
                    has_slice = True
                    key = key or 16 <= nal_type <= 23  # IRAP: BLA, IDR, CRA
            else:
                nal_type = nal[0] & 0x1F
                if nal_type in (_H264_AUD, _H264_FILLER):
                    continue
                if nal_type == _H264_SPS:
                    params[1].append(nal)
                elif nal_type == _H264_PPS:
                    params[2].append(nal)
                elif 1 <= nal_type <= 5:
                    has_slice = True
                    key = key or nal_type == _H264_IDR
            keep.append(nal)
        if any(params):
            self._update_parameter_sets(track, params)
        if not has_slice:
            self.stats.video_skipped += 1
            return
        starting = False
        if not track.started:
            if not key or track.config is None:
                self.stats.video_skipped += 1
                return
            track.started = True
            if self._base is None:
                self._start(dts_ticks)
                starting = True
        dts_ms = max(0, self._ms(dts_ticks))
        cts = self._ms(pts_ticks) - dts_ms
        timestamp = dts_ms & 0xFFFFFFFF
        if track.config is not None and track.config != track.emitted:
            track.emitted = track.config
            header = b"\x90hvc1" if track.hevc else b"\x17\x00\x00\x00\x00"
            self._out.append(MediaTag(TagType.VIDEO, timestamp, header + track.config))
        if track.hevc:
            head = bytes((0x91 if key else 0xA1,)) + b"hvc1" + _si24(cts)
        else:
            head = bytes((0x17 if key else 0x27, 0x01)) + _si24(cts)
        body = b"".join([head, *(b for nal in keep for b in (len(nal).to_bytes(4, "big"), nal))])
        self._out.append(MediaTag(TagType.VIDEO, timestamp, body))
        self.stats.video_frames += 1
        if starting:
            queued, self._queue = self._queue, deque()
            for q in queued:
                self._emit_audio(q.ticks, q.config, q.frame)

    def _update_parameter_sets(self, track: _VideoTrack,
                               params: tuple[list[bytes], list[bytes], list[bytes]]) -> None:
        key = tuple(_unique(new) if new else old for new, old in zip(params, track.param_key,
                                                                      strict=True))
        if key == track.param_key:
            return
        track.param_key = key
        vps, sps, pps = key
        try:
            if track.hevc:
                config = hevc_decoder_config(vps, sps, pps)
            else:
                config = avc_decoder_config(sps, pps)
        except CodecError:
            if sps and pps and (vps or not track.hevc):
                self.stats.parameter_set_errors += 1
            return
        track.config = config

    # ---------------------------------------------------------------- audio

    def _audio_pes(self, track: _AudioTrack, pts: int | None, payload: bytes) -> None:
        if track.framing is not None:
            self._framed_audio_pes(track, pts, payload, track.framing)
            return
        carried = len(track.leftover)
        data = track.leftover + payload if carried else payload
        track.leftover = b""
        pes_ticks = self._unwrap(pts) if pts is not None else None
        stats = self.stats
        pos = 0
        index = 0  # frames that start in this PES: its PTS is the first one's
        size = len(data)
        while pos + 7 <= size:
            if data[pos] != 0xFF or data[pos + 1] & 0xF6 != 0xF0:  # syncword, layer 0
                stats.adts_errors += 1
                found = data.find(b"\xff", pos + 1)
                pos = found if found >= 0 else size
                continue
            b2, b3 = data[pos + 2], data[pos + 3]
            header_length = 7 if data[pos + 1] & 0x01 else 9
            frame_length = ((b3 & 0x03) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
            config = self._adts_config(track, b2, b3)
            if frame_length <= header_length or config is None:
                stats.adts_errors += 1
                pos += 1
                continue
            if pos + frame_length > size:
                break
            asc, rate = config
            duration = _AAC_FRAME_SAMPLES * 90_000 // rate
            if pos >= carried and pes_ticks is not None:
                ticks: int | None = pes_ticks + index * _AAC_FRAME_SAMPLES * 90_000 // rate
            else:
                ticks = track.next_ticks
            if pos >= carried:
                index += 1
            if data[pos + 6] & 0x03:
                stats.adts_errors += 1  # several raw data blocks in one frame: not supported
            elif ticks is None:
                stats.audio_skipped += 1
            else:
                self._emit_audio(ticks, b"\xaf\x00" + asc,
                                 b"\xaf\x01" + data[pos + header_length : pos + frame_length])
            if ticks is not None:
                track.next_ticks = ticks + duration
            pos += frame_length
        if size - pos <= _MAX_ADTS_FRAME:
            track.leftover = data[pos:]

    def _framed_audio_pes(self, track: _AudioTrack, pts: int | None, payload: bytes,
                          framing: _Framing) -> None:
        """MPEG audio, AC-3, Opus or LATM: units found by their headers, timed as ADTS
        frames are (the PES's PTS is its first new unit's; the others follow by their
        samples)."""
        carried = len(track.leftover)
        data = track.leftover + payload if carried else payload
        track.leftover = b""
        pes_ticks = self._unwrap(pts) if pts is not None else None
        config, prefix, split, sync = framing.config, framing.prefix, framing.split, framing.sync
        pos = index = 0
        size = len(data)
        while pos + 6 <= size:
            unit = split(data, pos)
            if unit is None or unit.length < 3:
                self.stats.adts_errors += 1
                found = data.find(sync, pos + 1)
                pos = found if found >= 0 else size
                continue
            if pos + unit.length > size:
                break
            if not unit.samples:  # E-AC-3's dependent substream (more channels of the frame
                # before, which alone decodes to the ladder's stereo), or a LATM frame
                # before its first StreamMuxConfig or one that does not read
                if unit.damaged:
                    self.stats.adts_errors += 1
                    if unit.unsupported is not None:
                        track.unsupported = unit.unsupported
                pos += unit.length
                continue
            duration = unit.samples * 90_000 // unit.rate
            if pos >= carried and pes_ticks is not None:
                ticks: int | None = pes_ticks + index * duration
            else:
                ticks = track.next_ticks
            if pos >= carried:
                index += 1
            track.unsupported = None
            if ticks is None:
                self.stats.audio_skipped += 1
            else:
                frame = unit.frame
                if frame is None:
                    frame = data[pos + unit.start : pos + unit.length]
                self._emit_audio(ticks, unit.config or config, prefix + frame)
                track.next_ticks = ticks + duration
            pos += unit.length
        if size - pos <= _MAX_FRAMED_AUDIO:
            track.leftover = data[pos:]

    def _adts_config(self, track: _AudioTrack, b2: int, b3: int) -> tuple[bytes, int] | None:
        bits = (b2 << 8 | b3) & 0xFDC0  # profile, sampling index, channel configuration
        if bits in track.configs:
            return track.configs[bits]
        profile, index, channels = b2 >> 6, (b2 >> 2) & 0x0F, ((b2 & 0x01) << 2) | (b3 >> 6)
        asc = (((profile + 1) << 11) | (index << 7) | (channels << 3)).to_bytes(2, "big")
        try:
            config: tuple[bytes, int] | None = (asc, parse_audio_specific_config(asc).sample_rate)
        except CodecError:
            config = None
        if len(track.configs) < 64:
            track.configs[bits] = config
        return config

    def _emit_audio(self, ticks: int, config: bytes, frame: bytes) -> None:
        """One audio frame tag (`frame`: its body), after the sequence header tag
        (`config`: its body) whenever that changes."""
        if self._base is None:
            if self._video is not None:  # wait for the first keyframe
                queue = self._queue
                queue.append(_QueuedAudio(ticks, config, frame))
                while len(queue) > _MAX_QUEUED_AUDIO or ticks - queue[0].ticks > self._audio_lead:
                    queue.popleft()
                    self.stats.audio_skipped += 1
                    if not queue:
                        break
                return
            self._start(ticks)
        ms = self._ms(ticks)
        if ms < 0:
            self.stats.audio_skipped += 1
            return
        track = self._audio
        if track is not None and track.emitted != config:
            track.emitted = config
            self._out.append(MediaTag(TagType.AUDIO, ms & 0xFFFFFFFF, config))
        self._out.append(MediaTag(TagType.AUDIO, ms & 0xFFFFFFFF, frame))
        self.stats.audio_frames += 1

