"""Build the one ffmpeg command line that turns a broadcast into its CMAF ladder (media).

FLV comes in on stdin; the video is decoded once, split once in a single
`-filter_complex`, scaled per rendition and encoded with a fixed GOP whose
keyframes are forced at the same media times in every rendition. Each rendition is
a fragmented-MP4 output written to its own pipe (`pipe:FD`, the FD passed to the
child with `pass_fds`), cut into one fragment per LL-HLS part. Progress goes to
stdout as `-progress` key=value blocks; stderr carries warnings only.

Audio is encoded per output (AAC is a few percent of one core; sharing one encoder
would need the tee muxer, whose single interleaving queue couples all renditions).

With a `control` address the graph also listens for filter commands (ffmpeg's `zmq`
filter) and every encoded rendition's branch starts with a gate (`metadata` in select
mode behind a timeline `enable` expression): while the gate is on, the branch gets no
frames, so that rendition's scaler and encoder do no work while the others go on
untouched. `gate_commands` builds the commands that close or open gates at a keyframe
instant, so a rung is given up or brought back without restarting ffmpeg. The same gate
lowers a rung's frame rate: letting one frame in `divisor` through, from a keyframe
instant on, halves what its scaler and encoder do, again without a restart. Those
rungs' outputs pass the frames on as they come (`-fps_mode passthrough`), each sample
lasting until the next, so the parts keep their boundaries and durations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace

from golive.media.ladder import LadderPlan, PlannedRendition
from golive.media.levels import (
    AUDIO_BLOCK_SAMPLES,
    LUMA_KEY,
    PICTURE_RATE,
    PICTURE_SIZE,
)
from golive.media.profiles import X264Preset

# A fragment is cut before the first packet at or past -frag_duration after the
# fragment's start, so aiming this far under a whole number of frames cuts exactly
# there, even when an audio packet (21 ms of AAC) triggers the cut.
_FRAG_SLACK_US = 1000
# libavformat buffers this long at most waiting to interleave audio with video.
_MAX_INTERLEAVE_US = 1_000_000
# Short input probing: the codec configuration always follows the FLV header, so
# ffmpeg only needs the first frames (a big keyframe fits in the probe size) and
# starts within ~0.1 s; a smaller probe makes it guess the audio sample format.
_PROBESIZE = 1_000_000
_ANALYZEDURATION_US = 200_000
# Renditions are planned at the source's aspect ratio rounded to even sizes (854x480 for
# 16:9 is 0.1% off); beyond this the picture is letterboxed rather than stretched.
_SAME_SHAPE = 0.01
MOVFLAGS = "+frag_keyframe+empty_moov+default_base_moof+delay_moov+cmaf+skip_sidx+skip_trailer"


@dataclass(frozen=True, slots=True)
class EncoderCapabilities:
    """Which H.264 encoders this ffmpeg can really use (detected once per binary)."""

    libx264: bool = True
    h264_nvenc: bool = False
    rung_gates: bool = True
    """The graph can take ZeroMQ commands (`zmq` filter, libzmq compiled in): rungs are
    given up and brought back by gates instead of restarts."""

    @property
    def video_encoder(self) -> str:
        if self.h264_nvenc:
            return "h264_nvenc"
        if self.libx264:
            return "libx264"
        raise RuntimeError("this ffmpeg has neither libx264 nor a working h264_nvenc")


CPU_ONLY = EncoderCapabilities()

WEBRTC_OUTPUT = "webrtc"
ANALYSIS_OUTPUT = "analysis"
"""The output name (key of `output_fds`) of the audio level and picture measurements: text
lines from `metadata` print filters (`golive.media.levels`), not media."""
"""The output name (key of `output_fds`) of the WebRTC-safe rendition, never in HLS."""


@dataclass(frozen=True, slots=True)
class WebRtcRendition:
    """The one extra output WHEP viewers share: H.264 constrained baseline, no B-frames,
    a keyframe every second, Opus 48 kHz, a fragment per packet (no added latency)."""

    width: int
    height: int
    frame_rate_num: int
    frame_rate_den: int
    video_bitrate: int  # bits/s
    audio_bitrate: int = 64_000
    preset: X264Preset = "veryfast"
    follows: str | None = None
    """The ladder rung whose size and frame rate this copies (None: the source's)."""

    @property
    def frame_rate_expr(self) -> str:
        if self.frame_rate_den == 1:
            return str(self.frame_rate_num)
        return f"{self.frame_rate_num}/{self.frame_rate_den}"

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.frame_rate_num / self.frame_rate_den))

    @classmethod
    def for_plan(cls, plan: LadderPlan) -> WebRtcRendition:
        """The ladder's second-lowest encoded rendition (the lowest when only one or two)."""
        encoded = sorted((r for r in plan.renditions if not r.passthrough),
                         key=lambda r: r.pixel_rate)
        if encoded:
            pick = encoded[1] if len(encoded) > 2 else encoded[0]
            return cls(pick.width, pick.height, pick.frame_rate_num, pick.frame_rate_den,
                       min(pick.video_bitrate, 2_500_000), follows=pick.name)
        source = plan.source
        width, height = source.width or 640, source.height or 360
        if height > 720:  # a passthrough-only ladder: keep WebRTC at 720p at most
            width, height = (width * 720 // height) // 2 * 2, 720
        rate = round(source.frame_rate or 30)
        return cls(width, height, max(1, rate), 1, 1_500_000)


_PRESET_SPEED: tuple[X264Preset, ...] = (
    "veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast", "superfast",
    "ultrafast",
)  # fmt: skip


def degraded_webrtc(webrtc: WebRtcRendition, plan: LadderPlan) -> WebRtcRendition:
    """The WHEP output as a degrade step encodes: `plan` is the step's ladder with its
    given-up rungs still in (what ffmpeg runs). The WHEP output degrades with the rung it
    copies: a ladder preset faster than its own is taken too, and that rung's lowered
    frame rate becomes its own (still a keyframe a second). WHEP viewers then get fewer
    frames of the same picture instead of a starved encoder's stalls."""
    preset = webrtc.preset
    faster = plan.preset_override
    if faster is not None and _PRESET_SPEED.index(faster) > _PRESET_SPEED.index(preset):
        preset = faster
    rung = next((r for r in plan.renditions if r.name == webrtc.follows), None)
    if rung is None:
        return dc_replace(webrtc, preset=preset)
    return dc_replace(webrtc, preset=preset, frame_rate_num=rung.frame_rate_num,
                      frame_rate_den=rung.frame_rate_den)


def build_command(
    plan: LadderPlan,
    *,
    ffmpeg: str,
    output_fds: Mapping[str, int],
    capabilities: EncoderCapabilities = CPU_ONLY,
    loglevel: str = "warning",
    webrtc: WebRtcRendition | None = None,
    control: str | None = None,
    gated: frozenset[str] = frozenset(),
    rate_divisors: Mapping[str, int] | None = None,
) -> list[str]:
    """The argv for `plan`: rendition `name` is written to `pipe:{output_fds[name]}`.

    With `webrtc` (and `output_fds[WEBRTC_OUTPUT]`), one more output for WHEP playback.
    With `control` (a ZeroMQ `ipc://` address), the graph takes gate commands there;
    renditions in `gated` start with their gate closed after their first frame (which
    still makes their init segment), and those in `rate_divisors` (the WebRTC output under
    WEBRTC_OUTPUT) let one frame in their divisor through from the start.
    With `output_fds[ANALYSIS_OUTPUT]`, the graph measures the audio level and the picture
    there (`_audio_analysis`, `_picture_analysis`).
    """
    missing = [r.name for r in plan.renditions if r.name not in output_fds]
    if missing:
        raise ValueError(f"no output fd for rendition(s) {', '.join(missing)}")
    encoder = capabilities.video_encoder
    low_latency = plan.latency_mode == "low"
    argv = [
        ffmpeg,
        "-hide_banner",
        "-loglevel", loglevel,
        "-nostats",
        "-progress", "pipe:1",
        "-stats_period", "0.5",
        # Input: live FLV on stdin. Slice threads only: frame threads add a frame of delay each.
        "-probesize", str(_PROBESIZE),
        "-analyzeduration", str(_ANALYZEDURATION_US),
        *(["-thread_type", "slice"] if low_latency else []),
        "-f", "flv",
        "-i", "pipe:0",
    ]  # fmt: skip
    if plan.audio_only:
        if webrtc is not None:
            raise ValueError("an audio-only ladder has no WebRTC output (it carries video)")
        return argv + _audio_only_outputs(plan, output_fds)
    encoded = [r for r in plan.renditions if not r.passthrough]
    labels: dict[str, str] = {}
    if webrtc is not None and WEBRTC_OUTPUT not in output_fds:
        raise ValueError("no output fd for the WebRTC rendition")
    analysis = output_fds.get(ANALYSIS_OUTPUT)
    # A passthrough-only ladder has no graph to hang the analysis on (and ffmpeg refuses
    # a graph of sinks alone): it goes unmeasured.
    if encoded or webrtc is not None:
        graph, labels = filter_graph(plan, webrtc, control=control, gated=gated,
                                     analysis_fd=analysis, rate_divisors=rate_divisors)
        argv += ["-filter_complex", graph]
    for rendition in plan.renditions:
        argv += ["-map", labels[rendition.name] if not rendition.passthrough else "0:v:0"]
        if rendition.passthrough:
            argv += ["-c:v", "copy"]
        elif encoder == "h264_nvenc":
            argv += _nvenc_args(plan, rendition)
        else:
            argv += _x264_args(plan, rendition)
        if control is not None and plan.frame_rate_divisor(rendition.name) > 1:
            argv += _RATE_GATED_OUTPUT
        if plan.has_audio:
            gated_audio = labels.get(audio_label(rendition.name))
            argv += [
                # Fill gaps with silence so a hiccup in the input never stretches a sample.
                *(["-map", gated_audio] if gated_audio else
                  ["-map", "0:a:0", "-af", "aresample=async=1"]),
                *_aac_args(plan),
            ]  # fmt: skip
        argv += _cmaf_output(plan, output_fds[rendition.name])
    if webrtc is not None:
        argv += ["-map", labels[WEBRTC_OUTPUT], *_webrtc_video_args(webrtc)]
        if control is not None and webrtc_rate_gated(plan, webrtc):
            argv += _RATE_GATED_OUTPUT
        if plan.has_audio:
            argv += [
                "-map", "0:a:0",
                "-af", "aresample=async=1",
                "-c:a", "libopus",
                "-b:a", str(webrtc.audio_bitrate),
                "-ar", "48000",
                "-ac", "2",
                "-application", "lowdelay",
                "-frame_duration", "20",
            ]  # fmt: skip
        argv += [
            "-max_interleave_delta", str(_MAX_INTERLEAVE_US),
            "-f", "mp4",
            "-movflags", MOVFLAGS,
            # A fragment per packet: no added latency. (+frag_every_frame writes
            # negative audio durations when audio and video are interleaved.)
            "-frag_duration", "1",
            "-flush_packets", "1",
            f"pipe:{output_fds[WEBRTC_OUTPUT]}",
        ]  # fmt: skip
    return argv


def _aac_args(plan: LadderPlan) -> list[str]:
    audio = plan.profile.audio
    return [
        "-c:a", "aac",
        "-profile:a", "aac_low",
        "-b:a", f"{audio.bitrate_kbps}k",
        "-ar", str(audio.sample_rate),
        "-ac", str(audio.channels),
    ]  # fmt: skip


def _cmaf_output(plan: LadderPlan, fd: int) -> list[str]:
    """A rendition's fragmented MP4 on `pipe:fd`, a fragment (part) per `part_target`."""
    return [
        "-max_interleave_delta", str(_MAX_INTERLEAVE_US),
        "-f", "mp4",
        "-movflags", MOVFLAGS,
        "-frag_duration", str(frag_duration_us(plan)),
        "-flush_packets", "1",
        f"pipe:{fd}",
    ]  # fmt: skip


def _audio_only_outputs(plan: LadderPlan, output_fds: Mapping[str, int]) -> list[str]:
    """The one AAC rendition of an audio-only ladder, and its sound measured beside it.

    Every AAC frame is a sync sample, so the muxer cuts a fragment at each `part_target`
    (whole frames: `frag_duration_us`) and every part is independent."""
    (rendition,) = plan.renditions
    analysis = output_fds.get(ANALYSIS_OUTPUT)
    if analysis is None:
        source = ["-map", "0:a:0", "-af", "aresample=async=1"]
    else:
        # (ffmpeg refuses a graph of sinks alone: the measurement branches off the output.)
        graph = "[0:a:0]aresample=async=1,asplit=2[aout][alevel];" + _audio_analysis(
            "[alevel]", analysis)
        source = ["-filter_complex", graph, "-map", "[aout]"]
    return [*source, *_aac_args(plan), *_cmaf_output(plan, output_fds[rendition.name])]


# An output whose gate may let only one frame in two through: its frames go to the
# encoder and muxer with their own times. (The ffmpeg the tests run, 9.0, does so for MP4
# by default; said outright, so a default or muxer that wants a constant rate never
# duplicates the dropped frames back, which would cost the encoder the work the gate saved.)
_RATE_GATED_OUTPUT = ["-fps_mode:v", "passthrough"]


def webrtc_rate_gated(plan: LadderPlan, webrtc: WebRtcRendition) -> bool:
    """Whether the WebRTC output's gate lowers its frame rate with the rung it copies."""
    follows = webrtc.follows
    if follows is None or follows not in plan.names:
        return False
    rung = plan.rendition(follows)
    return (
        plan.frame_rate_divisor(follows) > 1
        and (rung.frame_rate_num, rung.frame_rate_den)
        == (webrtc.frame_rate_num, webrtc.frame_rate_den)
    )


def _webrtc_video_args(w: WebRtcRendition) -> list[str]:
    # Always libx264: constrained baseline is what every WebRTC stack decodes, and this
    # small rendition costs little next to the ladder.
    return [
        "-c:v", "libx264",
        "-preset", w.preset,
        "-tune", "zerolatency",
        "-profile:v", "baseline",
        "-bf", "0",
        "-b:v", f"{w.video_bitrate // 1000}k",
        "-maxrate", f"{w.video_bitrate // 1000}k",
        "-bufsize", f"{w.video_bitrate // 1000}k",
        "-g", str(w.gop_frames),
        "-keyint_min", str(w.gop_frames),
        "-sc_threshold", "0",
        # A keyframe a second by the clock too: at a gate-lowered frame rate `-g` alone
        # would space them by its frame count, twice as far apart.
        "-force_key_frames", f"expr:gte(t,n_forced*{_gop_seconds(w):.6f})",
    ]  # fmt: skip


def _gop_seconds(w: WebRtcRendition) -> float:
    return w.gop_frames * w.frame_rate_den / w.frame_rate_num


@dataclass(frozen=True, slots=True)
class _GraphOutput:
    name: str
    width: int
    height: int
    frame_rate_expr: str


def filter_graph(
    plan: LadderPlan,
    webrtc: WebRtcRendition | None = None,
    *,
    control: str | None = None,
    gated: frozenset[str] = frozenset(),
    analysis_fd: int | None = None,
    rate_divisors: Mapping[str, int] | None = None,
) -> tuple[str, dict[str, str]]:
    """One graph: decode once, (fps once when shared), split once, scale per rendition.

    With `analysis_fd`, the split has one more branch, the picture measurement, and the
    audio is measured on a branch of its own; both write to that fd (`golive.media.levels`).

    With `control`, a `zmq` filter at the head and a gate at the start of each ladder
    rendition's branch (see `gate_commands`), before its scaler; with audio, the audio is
    resampled once in the same graph and split to a gate per ladder rendition, so a
    closed rendition's output goes quiet altogether (`audio_label` names those outputs).
    A rung that may lower its frame rate (and the WebRTC output that copies it) has a
    video gate too; `rate_divisors` start them at their lower rate.
    """
    if control is not None and not control.startswith("ipc://"):
        raise ValueError("the control address must be an ipc:// path")
    if control is not None and any(c in control for c in "'\\,;[]"):
        raise ValueError("the control address must not need escaping")
    encoded = [
        _GraphOutput(r.name, r.width, r.height, r.frame_rate_expr)
        for r in plan.renditions if not r.passthrough
    ]
    if webrtc is not None:
        encoded.append(
            _GraphOutput(WEBRTC_OUTPUT, webrtc.width, webrtc.height, webrtc.frame_rate_expr)
        )
    scaler = plan.profile.encoder.scaler
    rates = {r.frame_rate_expr for r in encoded}
    shared_rate = len(rates) == 1
    head = "[0:v:0]"
    if control is not None:
        # Commands are taken as frames pass this point, ahead of every gate.
        head += "zmq=bind_address='" + control.replace(":", "\\:", 1) + "',"
    if plan.source.interlaced:
        head += DEINTERLACE + ","
    if shared_rate:
        head += f"fps={encoded[0].frame_rate_expr},"
    branches = len(encoded) + (analysis_fd is not None)
    head += f"split={branches}" + "".join(f"[s{i}]" for i in range(branches))
    chains = [head]
    if analysis_fd is not None:
        chains.append(_picture_analysis(f"[s{len(encoded)}]", analysis_fd))
        if plan.has_audio:
            chains.append(_audio_analysis("[0:a:0]", analysis_fd))
    labels: dict[str, str] = {}
    divisors = rate_divisors or {}
    rate_gated_webrtc = webrtc is not None and webrtc_rate_gated(plan, webrtc)
    for i, r in enumerate(encoded):
        steps = []
        if not shared_rate:
            steps.append(f"fps={r.frame_rate_expr}")
        if control is not None and (r.name != WEBRTC_OUTPUT or rate_gated_webrtc):
            # After the rendition's fps: the gate counts the frames its encoder would get.
            state = GateState(closed=r.name in gated, divisor=divisors.get(r.name, 1))
            steps.append(_gate(i, state))
        # Always: an input spliced in later may have another size (see `_scale`).
        steps += _scale(r.width, r.height, scaler)
        steps += ["format=yuv420p", "setsar=1"]
        chains.append(f"[s{i}]{','.join(steps)}[v{i}]")
        labels[r.name] = f"[v{i}]"
    ladder = [r.name for r in encoded if r.name != WEBRTC_OUTPUT]
    if control is not None and plan.has_audio and ladder:
        # (A gap in the input is filled with silence before the split, as per output.)
        chains.append(
            f"[0:a:0]aresample=async=1,asplit={len(ladder)}"
            + "".join(f"[as{i}]" for i in range(len(ladder)))
        )
        for i, name in enumerate(ladder):
            gate = _gate(i, GateState(closed=name in gated), audio=True)
            chains.append(f"[as{i}]{gate}[a{i}]")
            labels[audio_label(name)] = f"[a{i}]"
    return ";".join(chains), labels


DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=interlaced"
"""Fields woven into whole frames before the ladder scales them (scaling interlaced
pictures smears the fields into combs): one frame out per frame in, so the frame rate
the ladder was planned at stays. Only pictures the decoder marks interlaced are
processed; a progressive picture passes as it is, one frame later (the filter looks
one frame ahead), so the filter is in the graph only for a source that codes fields."""


def _print_to(fd: int) -> str:
    # `direct`: every line is written at once (unbuffered), not in 32 KiB chunks; each
    # is under PIPE_BUF, so the audio and the picture filter never split each other's.
    return f"file='pipe\\:{fd}':direct=1"


def _audio_analysis(source: str, fd: int) -> str:
    """RMS and peak level of every 100 ms block of `source` (all channels together)."""
    return (
        f"{source}asetnsamples=n={AUDIO_BLOCK_SAMPLES}:p=0,"
        "astats=metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level+Peak_level,"
        f"ametadata=mode=print:{_print_to(fd)},anullsink"
    )


def _picture_analysis(source: str, fd: int) -> str:
    """Luma statistics of a tiny copy of `PICTURE_RATE` pictures a second: a few
    thousand pixels each, so the branch costs next to nothing beside the ladder."""
    width, height = PICTURE_SIZE
    return (
        f"{source}fps={PICTURE_RATE},scale={width}:{height}:flags=area,format=yuv420p,"
        f"signalstats,metadata=mode=print:key={LUMA_KEY}:{_print_to(fd)},nullsink"
    )


def audio_label(rendition: str) -> str:
    """The key of `filter_graph`'s labels for a rendition's gated audio."""
    return f"{rendition}/audio"


_GATE_KEY = "golive_gate"  # no frame carries it: a gate that is on selects nothing


def gate_name(index: int, *, audio: bool = False) -> str:
    """The filter instance of the gate on the graph's `index`-th encoded branch."""
    return f"ametadata@agate{index}" if audio else f"metadata@gate{index}"


@dataclass(frozen=True, slots=True)
class GateState:
    """What a rendition's gate lets through: nothing (closed), or one frame in `divisor`."""

    closed: bool = False
    divisor: int = 1

    def drops(self) -> str:
        """The gate's `enable` for every frame from now on: true (non-zero) drops the frame.

        A lowered rate keeps the frames whose number is a multiple of the divisor, so
        every GOP and part boundary (whole multiples of it, `LadderPlan.frame_rate_divisor`)
        keeps its frame, and the keyframes stay where every other rendition has them."""
        if self.closed:
            return "1"
        if self.divisor > 1:
            return f"mod(n,{self.divisor})"
        return "0"


def _gate(index: int, state: GateState, *, audio: bool = False) -> str:
    # Open (frames pass) unless closed or slowed from the start; a closed gate still lets
    # the first frame through, so the rendition's encoder starts and its output has an
    # init segment (frame 0 is a multiple of any divisor too).
    enable = "gte(n,1)" if state.closed else state.drops()
    enable = enable.replace(",", "\\,")
    return f"{gate_name(index, audio=audio)}=mode=select:key={_GATE_KEY}:enable={enable}"


def _switch(before: str, after: str, frames: int) -> str:
    """An `enable` that is `before` for the frames before number `frames`, then `after`."""
    if before == after:
        return after
    terms = [
        f"{op}(n,{frames})" + ("" if expr == "1" else f"*{expr}")
        for op, expr in (("lt", before), ("gte", after))
        if expr != "0"
    ]
    return "+".join(terms) or "0"


def gate_commands(
    plan: LadderPlan,
    rendition: str,
    *,
    before: GateState,
    after: GateState,
    at: float,
    webrtc: WebRtcRendition | None = None,
) -> list[str]:
    """The `zmq` commands that take `rendition`'s gates from `before` to `after` at media
    time `at` (a rendition of `plan`, or WEBRTC_OUTPUT with `webrtc`).

    `at` is a keyframe instant (a multiple of the GOP duration), so the last GOP before
    a close and the first after an open are whole and aligned with the other renditions,
    and a rate change starts on a keyframe.
    The video gate counts frames (`n`) rather than reading `t`: the encoder's keyframe
    clock starts at the first frame it gets, while `t` keeps the input's start offset,
    and the GOP is whole frames at every rendition's rate. The audio gate (closing and
    opening only: a rate is the picture's) goes by `t`,
    to within one audio frame: the input's audio starts with its first keyframe (the
    feed drops audio before it). The resampler before it has no `first_pts`: an input
    spliced in at another size or sample rate re-makes the whole graph, and a fresh
    resampler with `first_pts=0` started its output at 0 again, padding the broadcast
    so far with silence behind the audio already encoded (the splice test in
    tests/media/test_transcoder.py checks the audio timeline; tests/web/test_players_degrade.py
    that a given-up rung's drop completes). A re-made graph also re-reads every gate's
    initial `enable` and counts frames from 0 again, so an input that would re-make it
    while any gate is not open gets a restart instead of a splice (media/switch.py).
    One command per gate: `enable` is replaced by one that keeps the old state up to the
    instant and the new one after it.
    """
    encoded = [r for r in plan.renditions if not r.passthrough]
    names = [r.name for r in encoded]
    if rendition == WEBRTC_OUTPUT and webrtc is not None:
        index, rate = len(names), (webrtc.frame_rate_num, webrtc.frame_rate_den)
        if before.closed or after.closed:
            raise ValueError("the WebRTC output's gate only lowers its frame rate")
    elif rendition in names:
        index = names.index(rendition)
        rate = (encoded[index].frame_rate_num, encoded[index].frame_rate_den)
    else:
        raise ValueError(f"{rendition!r} is not an encoded rendition of the plan")
    if before == after:
        return []
    frames = round(at * rate[0] / rate[1])
    commands = [f"{gate_name(index)} enable {_switch(before.drops(), after.drops(), frames)}"]
    if plan.has_audio and before.closed != after.closed and rendition != WEBRTC_OUTPUT:
        op = "gte" if after.closed else "lt"
        commands.append(f"{gate_name(index, audio=True)} enable {op}(t,{at:.6f})")
    return commands


def next_keyframe_time(plan: LadderPlan, media_seconds: float, *, margin: float) -> float:
    """The first keyframe instant at least `margin` seconds after `media_seconds`."""
    gop = plan.gop_duration
    return math.ceil((media_seconds + margin) / gop - 1e-9) * gop


def _scale(width: int, height: int, scaler: str) -> list[str]:
    """Scale whatever picture comes in to exactly width x height, letterboxed when its
    shape differs by more than the even-size rounding of a planned rendition.

    The sizes are expressions of the input's (`iw`, `ih`), evaluated each time ffmpeg
    (re)configures the graph: an input spliced in at another size or aspect ratio (a
    backup, the slate) comes out at the rendition's size, so the encoder and the
    playlists never see a change. For the planned source it is a plain scale (none at
    all, inside libswscale, when the sizes are equal) and a pad that adds nothing.
    """
    other_shape = f"gt(abs(iw*{height}/(ih*{width})-1)\\,{_SAME_SHAPE})"
    w = f"if({other_shape}\\,min({width}\\,2*trunc({height}*iw/ih/2))\\,{width})"
    h = f"if({other_shape}\\,min({height}\\,2*trunc({width}*ih/iw/2))\\,{height})"
    return [
        f"scale=w={w}:h={h}:flags={scaler}",
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2",
    ]


def frag_duration_us(plan: LadderPlan) -> int:
    """-frag_duration that cuts every part after exactly its whole number of frames."""
    return max(1, round(plan.part_target * 1_000_000) - _FRAG_SLACK_US)


def force_key_frames(plan: LadderPlan) -> str:
    """Keyframes at n x GOP duration in every rendition, whatever x264 would have chosen.

    A frame lands exactly on each n x GOP instant (the GOP is whole frames at every
    rendition's rate), so comparing half a frame later is immune to float rounding of
    `t`. A frame is forced when it starts a GOP interval the previous forced one was
    not in, so a rendition whose gate reopens after a pause gets one keyframe at the
    reopening instant, not one per GOP it missed.
    """
    fastest = max(
        (r.frame_rate_num / r.frame_rate_den for r in plan.renditions if not r.passthrough),
        default=30.0,
    )
    gop, half = f"{plan.gop_duration:.9f}", f"{0.5 / fastest:.6f}"
    return (
        f"expr:if(isnan(prev_forced_t),1,"
        f"gt(floor((t+{half})/{gop}),floor((prev_forced_t+{half})/{gop})))"
    )


def _rate_args(r: PlannedRendition) -> list[str]:
    return [
        "-b:v", f"{r.video_bitrate // 1000}k",
        "-maxrate", f"{r.maxrate // 1000}k",
        "-bufsize", f"{r.bufsize // 1000}k",
    ]  # fmt: skip


def _x264_args(plan: LadderPlan, r: PlannedRendition) -> list[str]:
    low_latency = plan.latency_mode == "low"
    args = [
        "-c:v", "libx264",
        "-preset", plan.x264_preset,
        *(["-tune", "zerolatency"] if low_latency else []),
        "-profile:v", r.x264_profile,
        *_rate_args(r),
        "-g", str(r.gop_frames),
        "-keyint_min", str(r.gop_frames),
        "-sc_threshold", "0",
        "-force_key_frames", force_key_frames(plan),
        "-forced-idr", "1",
        "-flags:v", "+cgop",
    ]  # fmt: skip
    if low_latency:
        # zerolatency already means no lookahead and sliced threads; no B-frames either.
        args += ["-bf", "0"]
    return args


def _nvenc_args(plan: LadderPlan, r: PlannedRendition) -> list[str]:
    low_latency = plan.latency_mode == "low"
    args = [
        "-c:v", "h264_nvenc",
        "-preset", plan.profile.encoder.nvenc_preset,
        "-tune", "ll" if low_latency else "hq",
        "-profile:v", r.x264_profile,
        "-rc", "cbr" if low_latency else "vbr",
        *_rate_args(r),
        "-g", str(r.gop_frames),
        "-strict_gop", "1",
        "-no-scenecut", "1",
        "-force_key_frames", force_key_frames(plan),
        "-forced-idr", "1",
    ]  # fmt: skip
    if low_latency:
        args += ["-zerolatency", "1", "-delay", "0", "-rc-lookahead", "0", "-bf", "0"]
    return args
