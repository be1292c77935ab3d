"""Sound, picture, restart and latency-drift rules: thresholds from the profile, the
diagnosis branches, and the engine's lifecycle over them (for_seconds, resolve) fed by
the pipeline's level facts, `transcoder_restarted` events and posted-beacon windows."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from tests.health.test_alerts import Clock, alert_events, broadcast
from tests.health.test_diagnosis import signals
from tests.health.test_viewer_alerts import SLO, T0, rows, viewers

from golive.core import Event, EventBus, EventType
from golive.health import RULES, AlertEngine, EncoderSignals, Rule, StreamSignals, ViewLag
from golive.health.viewers import measure
from golive.media import AlertSpec, LevelFacts, PipelineFacts
from golive.media.transcoder import TranscoderStats
from golive.stream import StreamPolicy

RULE: dict[str, Rule] = {rule.name: rule for rule in RULES}
SPEC = AlertSpec(audio_silence_seconds=10, audio_clip_ratio=0.2, video_black_seconds=10,
                 max_transcoder_restarts=3, transcoder_restarts_seconds=600,
                 max_latency_growth_seconds=4)
MEDIA_RULES = ("audio_silent", "audio_clipping", "video_black", "transcoder_restarts",
               "viewer_latency_drift")


def levels(**changes: Any) -> LevelFacts:
    base = LevelFacts(audio_rms_dbfs=-20.0, audio_peak_dbfs=-8.0, silent_s=0.0,
                      clipping_ratio=0.0, black_s=0.0, luma_high=180.0)
    return dataclasses.replace(base, **changes)


def fired(s: StreamSignals, spec: AlertSpec = SPEC) -> set[str]:
    return {name for name in MEDIA_RULES if RULE[name].evaluate(s, spec) is not None}


def diagnosis(name: str, s: StreamSignals) -> tuple[float, str, str, str, dict[str, Any]]:
    finding = RULE[name].evaluate(s, SPEC)
    assert finding is not None, name
    d = RULE[name].diagnose(finding, s)
    return finding.value, finding.summary, d.cause, d.fix, d.related


def test_a_healthy_stream_or_an_unmeasured_one_fires_none_of_them() -> None:
    assert fired(signals(levels=levels())) == set()
    assert fired(signals()) == set()  # no transcoder: nothing measured
    # A track that stopped being measured (levels None inside) judges nothing either.
    unknown = LevelFacts(None, None, None, None, None, None)
    assert fired(signals(levels=unknown)) == set()


def test_audio_silent_holds_for_its_seconds_and_tells_digital_silence_from_a_faint_input() -> None:
    assert fired(signals(levels=levels(silent_s=9.9, audio_rms_dbfs=-120.0))) == set()
    value, summary, cause, fix, related = diagnosis(
        "audio_silent", signals(levels=levels(silent_s=12.0, audio_rms_dbfs=-120.0,
                                              audio_peak_dbfs=-120.0)))
    assert value == 12.0 and "silent for 12.0 s" in summary and "-60 dBFS" in summary
    assert "digital silence" in cause and "muted" in cause
    assert "Audio Mixer" in fix and related["audio_rms_dbfs"] == -120.0
    _, _, cause, fix, _ = diagnosis(
        "audio_silent", signals(levels=levels(silent_s=12.0, audio_rms_dbfs=-72.0)))
    assert "faint signal (-72 dBFS)" in cause and "wrong input" in cause and "gain" in fix
    # The profile's seconds decide.
    assert fired(signals(levels=levels(silent_s=12.0)),
                 SPEC.model_copy(update={"audio_silence_seconds": 30})) == set()


def test_audio_clipping_is_a_share_of_the_time_and_names_gain_and_limiter() -> None:
    assert fired(signals(levels=levels(clipping_ratio=0.19, audio_peak_dbfs=-0.3))) == set()
    value, summary, cause, fix, _ = diagnosis(
        "audio_clipping", signals(levels=levels(clipping_ratio=1.0, audio_peak_dbfs=29.4)))
    assert value == 1.0 and "100% of the audio peaks at full scale (peak +29.4 dBFS)" in summary
    assert "past full scale" in cause and "+29.4 dBFS" in cause
    assert "lower the gain" in fix and "limiter" in fix
    _, _, cause, _, _ = diagnosis(
        "audio_clipping", signals(levels=levels(clipping_ratio=0.4, audio_peak_dbfs=-0.3)))
    assert "too hot" in cause


def test_video_black_for_its_seconds_and_an_empty_scene_when_silent_too() -> None:
    assert fired(signals(levels=levels(black_s=9.5))) == set()
    value, summary, cause, fix, related = diagnosis(
        "video_black", signals(levels=levels(black_s=11.0, luma_high=16.0)))
    assert value == 11.0 and "black for 11.0 s" in summary
    assert "video source was lost" in cause and "capture card" in cause
    assert "program scene" in fix and related["luma_high"] == 16.0
    _, _, cause, _, _ = diagnosis(
        "video_black", signals(levels=levels(black_s=11.0, silent_s=11.0)))
    assert "empty scene" in cause and "silent" in cause


def test_transcoder_restarts_counts_the_period_and_names_the_reasons() -> None:
    two = ("slow_encode: step 1", "slow_encode: step 2")
    assert fired(signals(restarts=two)) == set()
    value, summary, cause, fix, related = diagnosis(
        "transcoder_restarts", signals(restarts=(*two, "encode_recovered: step 1",
                                                 "ffmpeg was killed by signal 9: ")))
    assert value == 4 and "restarted 4 times in 10 min" in summary
    assert cause.startswith("the machine is starved of CPU")
    assert "starvation x3" in cause and "killed x1" in cause
    assert "more CPU" in fix
    assert related["restart_reasons"] == {"starvation": 3, "killed": 1}
    _, _, cause, fix, _ = diagnosis("transcoder_restarts", signals(restarts=(
        "ffmpeg exited with code 1: [h264_nvenc] OpenEncodeSessionEx failed",) * 3))
    assert "NVENC" in cause and "nvidia-smi" in fix
    _, _, cause, _, _ = diagnosis("transcoder_restarts", signals(
        restarts=("the publisher's timestamps went back",) * 3))
    assert "timestamps jumped back" in cause and "input change x3" in cause
    _, _, cause, _, _ = diagnosis("transcoder_restarts", signals(
        restarts=("ffmpeg exited with code 234: Invalid data found",) * 3))
    assert "(last: ffmpeg exited with code 234: Invalid data found)" in cause


def lag(view: str, player: str, browser: str, latency: float, growth: float) -> ViewLag:
    return ViewLag(view, player, browser, latency, growth)


def test_viewer_latency_drift_names_the_drifting_players_when_the_encoder_keeps_up() -> None:
    v = dataclasses.replace(viewers(), drifting=(
        lag("view-a", "hls.js", "chrome", 14.0, 9.0), lag("view-b", "hls.js", "chrome", 9.0, 6.5),
        lag("view-c", "native", "safari", 4.0, 1.0)))
    steady = EncoderSignals(degrade_step=0, speed=None, exhausted=False, restarts=0,
                            renditions=("360p",), live_speed=1.0)
    value, summary, cause, fix, related = diagnosis(
        "viewer_latency_drift", signals(viewers=v, encoder=steady))
    assert value == 9.0 and "2 view(s) fell up to 9.0 s further behind live" in summary
    assert cause.startswith("players drifting from the live edge while the encoder keeps "
                            "real time (1.00x): hls.js/chrome x2")
    assert "view-a (+9.0 s, now 14.0 s)" in cause and "view-c" not in cause
    assert "maxLiveSyncPlaybackRate" in fix
    assert [d["view_id"] for d in related["drifting"]] == ["view-a", "view-b"]
    # The same growth with an encoder under real time: every viewer falls behind.
    slow = dataclasses.replace(steady, live_speed=0.8)
    _, _, cause, fix, _ = diagnosis("viewer_latency_drift", signals(viewers=v, encoder=slow))
    assert "encoder is slower than real time (0.80x)" in cause and "lower the ladder" in fix
    # Under the growth threshold: quiet.
    calm = dataclasses.replace(viewers(), drifting=(lag("view-c", "native", "safari", 4, 3.9),))
    assert fired(signals(viewers=calm)) == set()


def test_the_drift_window_comes_from_the_players_latency_beacons() -> None:
    window = rows({
        "view-a": ("hls.js", [(1, "first_frame", {"ms": 900}), (10, "latency", {"seconds": 2}),
                              (60, "latency", {"seconds": 2.4})]),
        "view-b": ("native", [(1, "first_frame", {"ms": 900}), (10, "latency", {"seconds": 3}),
                              (40, "latency", {"seconds": 6}), (60, "latency", {"seconds": 11})]),
    })
    v = measure(window, T0, T0 + timedelta(seconds=120), SLO)
    assert [(d.view_id, round(d.growth_s, 3)) for d in v.drifting] == [
        ("view-b", 8.0), ("view-a", 0.4)]
    value, _, cause, _, _ = diagnosis("viewer_latency_drift", signals(viewers=v))
    assert value == 8.0 and "native/" in cause and "view-b (+8.0 s, now 11.0 s)" in cause


# The engine -----------------------------------------------------------------------------


class Pipeline:
    """The pipeline's facts for one stream, with the level meter's facts set by the test."""

    def __init__(self) -> None:
        self.levels = levels()

    def facts(self, stream_id: str) -> PipelineFacts | None:
        stats = TranscoderStats(restarts=0, renditions=("360p",), encoder="libx264",
                                running=True, failed=False, pid=1, input_bytes=0,
                                dropped_input_bytes=0, dropped_video_frames=0,
                                last_progress=None, speed=1.0, levels=self.levels)
        return PipelineFacts(profile="default@1", renditions=("360p",), latency_mode="low",
                             transcoder=stats)


async def test_engine_fires_and_resolves_level_alerts_and_counts_restarts_from_events() -> None:
    bus, clock, pipeline = EventBus(), Clock(), Pipeline()
    sub = bus.subscribe()

    async def load(policy: StreamPolicy) -> AlertSpec:
        return AlertSpec(for_seconds=2, resolve_after_seconds=3, audio_silence_seconds=5,
                         max_transcoder_restarts=2, transcoder_restarts_seconds=60)

    engine = AlertEngine(bus, load_spec=load, clock=clock, pipeline=pipeline)
    engine.start()
    b = broadcast()
    engine.broadcast_started(b)

    async def settle() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    def rules(kind: EventType) -> list[str]:
        return [e.data["rule"] for e in alert_events(sub) if e.type is kind]

    await settle()
    pipeline.levels = levels(silent_s=6.0, audio_rms_dbfs=-120.0)
    engine.evaluate(clock.now)  # pending
    clock.now += 1
    engine.evaluate(clock.now)
    assert "audio_silent" not in rules(EventType.ALERT_FIRING)  # held 1 s of 2
    clock.now += 1
    engine.evaluate(clock.now)
    events = [e for e in alert_events(sub) if e.data["rule"] == "audio_silent"]
    assert [e.type for e in events] == [EventType.ALERT_FIRING]
    assert events[0].data["value"] == 6.0 and "digital silence" in events[0].data["cause"]
    pipeline.levels = levels()  # sound again: resolves after 3 s clear
    for _ in range(4):
        clock.now += 1
        engine.evaluate(clock.now)
    assert "audio_silent" in rules(EventType.ALERT_RESOLVED)

    def restarted(reason: str) -> None:  # shaped like the pipeline's warning
        bus.publish(Event(type=EventType.LIVE_STREAM_WARNING, stream_id="ls_1",
                          broadcast_id="bc_1", data={"code": "transcoder_restarted",
                                                     "attempt": 1, "reason": reason}))

    restarted("ffmpeg was killed by signal 9: ")
    await settle()
    clock.now += 100  # that one leaves the 60 s period before the next two come
    restarted("ffmpeg was killed by signal 9: ")
    restarted("slow_encode: step 1")
    await settle()
    for _ in range(3):
        clock.now += 1
        engine.evaluate(clock.now)
    events = [e for e in alert_events(sub) if e.data["rule"] == "transcoder_restarts"]
    assert [e.type for e in events] == [EventType.ALERT_FIRING]
    assert events[0].data["value"] == 2
    assert events[0].data["related"]["restart_reasons"] == {"killed": 1, "starvation": 1}
    await engine.close()


async def test_the_slates_silence_and_card_are_not_judged() -> None:
    bus, clock, pipeline = EventBus(), Clock(), Pipeline()
    sub = bus.subscribe()

    async def load(policy: StreamPolicy) -> AlertSpec:
        return AlertSpec(for_seconds=1, audio_silence_seconds=2, video_black_seconds=2)

    engine = AlertEngine(bus, load_spec=load, clock=clock, pipeline=pipeline)
    b = broadcast()
    engine.broadcast_started(b)
    for _ in range(50):
        await asyncio.sleep(0)
    engine.publisher_lost(b)
    b.on_slate = True  # the hub's slate feeds the transcoder now
    pipeline.levels = levels(silent_s=30.0, black_s=30.0, audio_rms_dbfs=-120.0)
    for _ in range(5):
        clock.now += 1
        engine.evaluate(clock.now)
    assert not {"audio_silent", "video_black"} & {e.data["rule"] for e in alert_events(sub)}
    await engine.close()
