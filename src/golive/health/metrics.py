"""The node's Prometheus metrics: one registry per node, read from live state at scrape time (health).

Nothing here runs per media tag or per request. Stream-labelled series come from
`NodeCollector`, which walks the live broadcasts when Prometheus scrapes: a stream's
series exist while it is live and vanish when it ends, so cardinality is bounded by
the live streams. The origin counts requests in plain ints (`golive.delivery.OriginStats`)
that the collector reads; the process collector adds CPU, memory and file descriptors.
Each node has its own `CollectorRegistry` (tests run several nodes in one process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from golive import __version__
from golive.delivery import PART_LATENCY_BUCKETS, OriginStats
from golive.media import LivePipeline
from golive.stream import Broadcast, BroadcastHub

__all__ = ["MetricSources", "NodeMetrics"]


class _Counted(Protocol):
    """The access hook's counters."""

    calls: int
    errors: int


class _Webhooks(Protocol):
    attempts: int
    failures: int

    @property
    def lanes(self) -> int: ...


class _RecorderStats(Protocol):
    @property
    def stored(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def storage_failures(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def spooled(self) -> int: ...
    @property
    def lag_p50(self) -> float | None: ...
    @property
    def lag_p99(self) -> float | None: ...


class _Recorder(Protocol):
    def stats(self) -> _RecorderStats: ...


class _Chat(Protocol):
    connection_count: int
    messages_published: int
    publish_delay_seconds: float

    def connections_by_stream(self) -> dict[str, int]: ...


class _SrtStats(Protocol):
    @property
    def rtt_ms(self) -> float: ...
    @property
    def packets_received(self) -> int: ...
    @property
    def packets_lost(self) -> int: ...
    @property
    def retransmitted(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def buffer_ms(self) -> float: ...
    @property
    def receive_rate_bps(self) -> float: ...


class _SrtPublisher(Protocol):
    @property
    def stats(self) -> _SrtStats: ...


class _Srt(Protocol):
    def connection_facts(self) -> Mapping[str, _SrtPublisher]: ...


class _Whep(Protocol):
    def counts(self) -> dict[str, tuple[int, int, int]]: ...


class _Thumbnails(Protocol):
    decodes: int
    refused: int

    @property
    def queued(self) -> int: ...


class _HttpConnections(Protocol):
    open: int
    refused_per_address: int
    refused_full: int
    closed_idle: int


class _Readiness(Protocol):
    @property
    def last_reasons(self) -> tuple[str, ...] | None: ...


@dataclass(slots=True)
class MetricSources:
    """What the node's metrics are read from; None where the node does not run that part."""

    hub: BroadcastHub
    origin: OriginStats | None = None
    pipeline: LivePipeline[Any] | None = None
    srt: _Srt | None = None
    whep: _Whep | None = None
    chat: _Chat | None = None
    webhooks: _Webhooks | None = None
    recorder: _Recorder | None = None
    access_hook: _Counted | None = None
    readiness: _Readiness | None = None
    thumbnails: _Thumbnails | None = None
    http: _HttpConnections | None = None


class NodeMetrics:
    """The node's registry; `render()` is the body of `/metrics`."""

    def __init__(self, sources: MetricSources, *, monotonic: Callable[[], float] = time.monotonic
                 ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(namespace="golive", registry=self.registry)
        self.registry.register(NodeCollector(sources, monotonic=monotonic))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


class NodeCollector(Collector):
    """Reads the node's live state into metric families, once per scrape (event loop)."""

    def __init__(self, sources: MetricSources, *, monotonic: Callable[[], float]) -> None:
        self._s = sources
        self._monotonic = monotonic

    def collect(self) -> Iterator[Metric]:
        s = self._s
        broadcasts = s.hub.broadcasts
        info = _gauge("golive_build_info", "golive's version (always 1).", ["version"])
        info.add_metric([__version__], 1)
        yield info
        if s.readiness is not None and s.readiness.last_reasons is not None:
            ready = _gauge("golive_ready", "1 when /readyz last answered ready, else 0.")
            ready.add_metric([], 0 if s.readiness.last_reasons else 1)
            yield ready
        publishers = _gauge("golive_publishers", "Connected publishers.")
        publishers.add_metric([], s.hub.publisher_count)
        yield publishers
        live = _gauge("golive_broadcasts",
                      "Live broadcasts (including ones waiting for a reconnect).")
        live.add_metric([], len(broadcasts))
        yield live
        yield from self._ingest(broadcasts)
        yield from self._srt(broadcasts)
        yield from self._encoder(broadcasts)
        yield from self._viewers(broadcasts)
        yield from self._origin()
        yield from self._chat(broadcasts)
        yield from self._node_services()

    # Ingest ----------------------------------------------------------------------------

    def _ingest(self, broadcasts: list[Broadcast]) -> Iterator[Metric]:
        labels = ["stream_id"]
        received = _counter("golive_ingest_bytes", "Media bytes received per stream.", labels)
        # Bytes, Prometheus' base unit (promtool check metrics): bits are the query's `* 8`.
        bitrate = _gauge("golive_ingest_rate_bytes_per_second",
                         "Ingest rate over the last 5 s of arrival time, by track.",
                         ["stream_id", "track"])
        fps = _gauge("golive_ingest_frame_rate",
                     "Video frames per second, from the media timestamps of the last 5 s.",
                     labels)
        gop = _gauge("golive_ingest_keyframe_interval_seconds",
                     "Mean media time between the latest keyframes.", labels)
        drift = _gauge("golive_ingest_av_drift_seconds",
                       "Latest audio timestamp minus latest video timestamp.", labels)
        frames = _counter("golive_ingest_video_frames", "Video frames received.", labels)
        keyframes = _counter("golive_ingest_keyframes", "Keyframes received.", labels)
        malformed = _counter("golive_ingest_malformed_tags",
                             "Media tags that could not be parsed.", labels)
        reconnects = _counter("golive_publisher_reconnects",
                              "Publishers that came back within the broadcast's reconnect "
                              "window (the first publisher not counted).", labels)
        connected = _gauge("golive_publisher_connected",
                           "1 while a publisher feeds the broadcast, by ingest protocol.",
                           ["stream_id", "protocol"])
        now = self._s.hub.now()
        for b in broadcasts:
            sid = [b.stream_id]
            facts = b.meter.snapshot(now)
            received.add_metric(sid, facts.bytes_received)
            for track, kbps in (("video", facts.video_bitrate_kbps),
                                ("audio", facts.audio_bitrate_kbps),
                                ("total", facts.total_bitrate_kbps)):
                if kbps is not None:
                    bitrate.add_metric([b.stream_id, track], kbps * 1000 / 8)
            if facts.frame_rate is not None:
                fps.add_metric(sid, facts.frame_rate)
            if facts.keyframe_interval_s is not None:
                gop.add_metric(sid, facts.keyframe_interval_s)
            if facts.av_drift_s is not None:
                drift.add_metric(sid, facts.av_drift_s)
            frames.add_metric(sid, facts.video_frames)
            keyframes.add_metric(sid, facts.keyframes)
            malformed.add_metric(sid, facts.malformed_tags)
            reconnects.add_metric(sid, max(0, b.publisher_count - 1))
            if b.publisher is not None:
                connected.add_metric([b.stream_id, b.publisher.protocol], 1)
        yield from (received, bitrate, fps, gop, drift, frames, keyframes, malformed,
                    reconnects, connected)

    def _srt(self, broadcasts: list[Broadcast]) -> Iterator[Metric]:
        if self._s.srt is None:
            return
        labels = ["stream_id"]
        rtt = _gauge("golive_srt_rtt_seconds", "Smoothed SRT round-trip time.", labels)
        received = _counter("golive_srt_packets_received", "SRT data packets received.", labels)
        lost = _counter("golive_srt_packets_lost",
                        "SRT packets found missing (each counted once).", labels)
        retransmitted = _counter("golive_srt_packets_retransmitted",
                                 "SRT packets that arrived as retransmissions.", labels)
        dropped = _counter("golive_srt_packets_dropped",
                           "SRT packets given up (too late, or dropped by the sender).", labels)
        buffer = _gauge("golive_srt_receive_buffer_seconds",
                        "Media held in the SRT receive buffer.", labels)
        rate = _gauge("golive_srt_receive_rate_bytes_per_second", "SRT receive rate.", labels)
        facts = self._s.srt.connection_facts()
        for b in broadcasts:
            publisher = b.publisher
            if publisher is None or publisher.protocol != "srt":
                continue
            found = facts.get(publisher.stream_key)
            if found is None:
                continue
            st, sid = found.stats, [b.stream_id]
            rtt.add_metric(sid, st.rtt_ms / 1000)
            received.add_metric(sid, st.packets_received)
            lost.add_metric(sid, st.packets_lost)
            retransmitted.add_metric(sid, st.retransmitted)
            dropped.add_metric(sid, st.dropped)
            buffer.add_metric(sid, st.buffer_ms / 1000)
            rate.add_metric(sid, st.receive_rate_bps / 8)
        yield from (rtt, received, lost, retransmitted, dropped, buffer, rate)

    # Encoder and packaging ----------------------------------------------------------------

    def _encoder(self, broadcasts: list[Broadcast]) -> Iterator[Metric]:
        pipeline = self._s.pipeline
        if pipeline is None:
            return
        labels = ["stream_id"]
        speed = _gauge("golive_encoder_speed",
                       "Output media seconds per ingested media second over the health "
                       "window (below 1: the encoder falls behind real time).", labels)
        fps = _gauge("golive_encoder_frame_rate", "Frames per second ffmpeg reports.", labels)
        restarts = _counter("golive_encoder_restarts", "Encoder (ffmpeg) restarts.", labels)
        dropped = _counter("golive_encoder_dropped_frames",
                           "Video frames dropped before or by the encoder.", labels)
        duplicated = _counter("golive_encoder_duplicated_frames",
                              "Frames ffmpeg duplicated (current encoder run).", labels)
        dropped_input = _counter("golive_encoder_input_dropped_bytes",
                                 "Ingest bytes dropped because the encoder's input was full.",
                                 labels)
        running = _gauge("golive_encoder_running", "1 while the stream's ffmpeg runs.", labels)
        date_lag = _gauge("golive_input_date_lag_seconds",
                          "How much later than its program date time the newest input reached "
                          "ingest (least over its last second of media): near 0; after a "
                          "hung input's failover, the silence the splice left out of media "
                          "time.", labels)
        renditions = ["stream_id", "rendition"]
        part_lag = _gauge("golive_part_production_lag_seconds",
                          "How much later than its program date time (when its input reached "
                          "ingest) the newest part came out of the encoder: its encode and "
                          "fragment delay, growing while the encoder falls behind.", renditions)
        part_age = _gauge("golive_part_age_seconds",
                          "Seconds since the rendition's newest part was produced.", renditions)
        out_of_spec = _counter("golive_parts_out_of_spec",
                               "Parts longer than PART-TARGET or much shorter.", renditions)
        suspended = _gauge("golive_rendition_suspended",
                           "1 while the encoder has given up the rendition under load.",
                           renditions)
        webrtc = _counter("golive_webrtc_video_frames",
                          "Video frames of the WebRTC output, per stream (what each WHEP "
                          "viewer is sent).", labels)
        level = _gauge("golive_ingest_audio_level_dbfs",
                       "Audio level of the ingest over the last second, measured in the "
                       "transcoder's graph: RMS (power average) or the highest peak.",
                       ["stream_id", "kind"])
        silent = _gauge("golive_ingest_audio_silent_seconds",
                        "How long the ingest's audio has stayed under the profile's silence "
                        "level (0 while there is sound).", labels)
        clipping = _gauge("golive_ingest_audio_clipping_ratio",
                          "Share of the 100 ms audio blocks that peaked within 1 dB of full scale over the "
                          "profile's clipping window.", labels)
        black = _gauge("golive_ingest_video_black_seconds",
                       "How long the ingest's picture has been black (0 while it is not).",
                       labels)
        wall = time.time()
        for b in broadcasts:
            sid = [b.stream_id]
            live = pipeline.for_stream(b.stream_id)
            if live is None:
                continue
            feed = live.webrtc_sink
            if feed is not None:
                webrtc.add_metric(sid, feed.video_packets)
            transcoder = live.transcoder
            if transcoder is not None:
                stats = transcoder.stats
                if stats.speed is not None:
                    speed.add_metric(sid, stats.speed)
                restarts.add_metric(sid, stats.restarts)
                dropped.add_metric(sid, stats.dropped_video_frames)
                dropped_input.add_metric(sid, stats.dropped_input_bytes)
                running.add_metric(sid, 1 if stats.running else 0)
                if stats.input_date_lag is not None:
                    date_lag.add_metric(sid, stats.input_date_lag)
                progress = stats.last_progress
                if progress is not None:
                    fps.add_metric(sid, progress.fps)
                    duplicated.add_metric(sid, progress.dup_frames)
                # (The slate's card and silence are not the publisher's.)
                levels = stats.levels if stats.running and not b.on_slate else None
                if levels is not None:
                    for kind, dbfs in (("rms", levels.audio_rms_dbfs),
                                       ("peak", levels.audio_peak_dbfs)):
                        if dbfs is not None:
                            level.add_metric([b.stream_id, kind], dbfs)
                    for gauge, value in ((silent, levels.silent_s),
                                         (clipping, levels.clipping_ratio),
                                         (black, levels.black_s)):
                        if value is not None:
                            gauge.add_metric(sid, value)
            presentation = live.presentation
            if presentation is None:
                continue
            for name, window in presentation.renditions.items():
                rl = [b.stream_id, name]
                produced = window.production()
                if produced is not None:
                    arrived, lag = produced
                    part_lag.add_metric(rl, lag)
                    part_age.add_metric(rl, max(0.0, wall - arrived.timestamp()))
                out_of_spec.add_metric(rl, window.parts_out_of_spec)
                suspended.add_metric(rl, 1 if window.suspended else 0)
        yield from (speed, fps, restarts, dropped, duplicated, dropped_input, running, date_lag,
                    part_lag, part_age, out_of_spec, suspended, webrtc, level, silent,
                    clipping, black)

    # Viewers and the origin ---------------------------------------------------------------

    def _viewers(self, broadcasts: list[Broadcast]) -> Iterator[Metric]:
        viewers = _gauge("golive_viewers",
                         "Viewers per stream and protocol: distinct client addresses that "
                         "reloaded a media playlist in the last 15 s (ll-hls, hls), connected "
                         "WHEP sessions (whep).", ["stream_id", "protocol"])
        stream_of = {pid.id: b.stream_id for b in broadcasts for pid in b.policy.playback_ids}
        totals: dict[tuple[str, str], int] = {}
        if self._s.origin is not None:
            for (pid, protocol), count in self._s.origin.viewers(self._monotonic()).items():
                stream_id = stream_of.get(pid)
                if stream_id is not None:
                    key = (stream_id, protocol)
                    totals[key] = totals.get(key, 0) + count
        whep = self._s.whep.counts() if self._s.whep is not None else {}
        live = {b.stream_id for b in broadcasts}
        for stream_id, (connected, _, _) in whep.items():
            if stream_id in live:
                totals[(stream_id, "whep")] = connected
        for (stream_id, protocol), count in sorted(totals.items()):
            viewers.add_metric([stream_id, protocol], count)
        yield viewers
        if self._s.whep is None:
            return
        labels = ["stream_id"]
        connected_g = _gauge("golive_whep_viewers", "WHEP (WebRTC) viewers with ICE and DTLS "
                             "connected, per stream.", labels)
        pending_g = _gauge("golive_whep_connecting", "WHEP sessions still connecting, per "
                           "stream.", labels)
        backlog_g = _gauge("golive_whep_backlog_frames", "Most video frames any WHEP viewer of "
                           "the stream has waiting to be sent.", labels)
        for stream_id, (connected, pending, backlog) in whep.items():
            connected_g.add_metric([stream_id], connected)
            pending_g.add_metric([stream_id], pending)
            backlog_g.add_metric([stream_id], backlog)
        yield from (connected_g, pending_g, backlog_g)

    def _origin(self) -> Iterator[Metric]:
        o = self._s.origin
        if o is None:
            return
        requests = _counter("golive_origin_requests", "Origin answers by request kind and "
                            "HTTP status.", ["kind", "status"])
        for (kind, status), count in sorted(o.requests.items()):
            requests.add_metric([kind, str(status)], count)
        yield requests
        sent = _counter("golive_origin_sent_bytes", "Response body bytes the origin sent "
                        "(playlists and media; streamed MP4 bodies not counted).")
        sent.add_metric([], o.bytes_out)
        yield sent
        holds = _counter("golive_origin_holds", "Requests held for a playlist update or a "
                         "part that did not exist yet (blocking reload, preload hints).")
        holds.add_metric([], o.holds)
        yield holds
        held_s = _counter("golive_origin_hold_seconds", "Time requests spent held.")
        held_s.add_metric([], o.hold_seconds)
        yield held_s
        timeouts = _counter("golive_origin_hold_timeouts", "Holds that ended without the "
                            "awaited part or playlist update (answered 503 or late).")
        timeouts.add_metric([], o.hold_timeouts)
        yield timeouts
        cumulative, buckets = 0, []
        for bound, count in zip((*PART_LATENCY_BUCKETS, float("inf")),
                                o.part_latency_buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency = HistogramMetricFamily(
            "golive_origin_part_delivery_seconds",
            "Part requests from arrival to answer, a preload hint's hold included.",
            buckets=buckets, sum_value=o.part_latency_sum)
        yield latency

    # Chat and the node's services ---------------------------------------------------------

    def _chat(self, broadcasts: list[Broadcast]) -> Iterator[Metric]:
        chat = self._s.chat
        if chat is None:
            return
        total = _gauge("golive_chat_connections", "Open chat connections on the node.")
        total.add_metric([], chat.connection_count)
        yield total
        per_stream = _gauge("golive_chat_stream_connections", "Open chat connections per live "
                            "stream.", ["stream_id"])
        live = {b.stream_id for b in broadcasts}
        for stream_id, count in sorted(chat.connections_by_stream().items()):
            if stream_id in live:
                per_stream.add_metric([stream_id], count)
        yield per_stream
        messages = _counter("golive_chat_messages", "Chat messages stored and published.")
        messages.add_metric([], chat.messages_published)
        yield messages
        delay = SummaryMetricFamily(
            "golive_chat_delivery_lag_seconds",
            "Chat messages from accepted to published to their room (the store's commit "
            "included).", count_value=chat.messages_published,
            sum_value=chat.publish_delay_seconds)
        yield delay

    def _node_services(self) -> Iterator[Metric]:
        s = self._s
        hook = s.access_hook
        calls = _counter("golive_access_hook_calls", "Requests sent to access hooks.")
        calls.add_metric([], hook.calls if hook else 0)
        errors = _counter("golive_access_hook_errors",
                          "Access hook calls that timed out or failed.")
        errors.add_metric([], hook.errors if hook else 0)
        yield from (calls, errors)
        if s.http is not None:
            http = s.http
            open_ = _gauge("golive_http_connections",
                           "Connections open on the HTTP port, WebSockets included.")
            open_.add_metric([], http.open)
            refused = _counter("golive_http_connections_refused", "Connections to the HTTP "
                               "port closed at once: past http_max_connections_per_address "
                               "(per_address), or at http_max_connections with none idle "
                               "(limit).", labels=["reason"])
            refused.add_metric(["per_address"], http.refused_per_address)
            refused.add_metric(["limit"], http.refused_full)
            closed = _counter("golive_http_idle_connections_closed", "Idle connections "
                              "closed to make room at http_max_connections.")
            closed.add_metric([], http.closed_idle)
            yield from (open_, refused, closed)
        if s.thumbnails is not None:
            decodes = _counter("golive_thumbnail_decodes",
                               "Thumbnails decoded by ffmpeg (cache misses).")
            decodes.add_metric([], s.thumbnails.decodes)
            refused = _counter("golive_thumbnail_refused", "Thumbnail requests answered 503 "
                               "because too many decodes were queued.")
            refused.add_metric([], s.thumbnails.refused)
            queued = _gauge("golive_thumbnail_queue", "Thumbnail decodes running or waiting.")
            queued.add_metric([], s.thumbnails.queued)
            yield from (decodes, refused, queued)
        if s.webhooks is not None:
            attempts = _counter("golive_webhook_attempts", "Webhook delivery attempts.")
            attempts.add_metric([], s.webhooks.attempts)
            failures = _counter("golive_webhook_failures",
                                "Webhook delivery attempts that failed.")
            failures.add_metric([], s.webhooks.failures)
            lanes = _gauge("golive_webhook_lanes", "Webhook endpoints being delivered to.")
            lanes.add_metric([], s.webhooks.lanes)
            yield from (attempts, failures, lanes)
        if s.recorder is not None:
            r = s.recorder.stats()
            stored = _counter("golive_recording_objects_stored",
                              "Recorded segments and inits stored and indexed.")
            stored.add_metric([], r.stored)
            dropped = _counter("golive_recording_segments_dropped", "Recorded segments lost "
                               "because the queue and the spool were full.")
            dropped.add_metric([], r.dropped)
            failed = _counter("golive_recording_storage_failures",
                              "Storage requests that failed and were retried.")
            failed.add_metric([], r.storage_failures)
            waiting = _gauge("golive_recording_waiting",
                             "Objects waiting for storage, by where they wait.", ["where"])
            waiting.add_metric(["memory"], r.queued)
            waiting.add_metric(["spool"], r.spooled)
            lag = _gauge("golive_recording_upload_lag_seconds", "Segment complete to stored "
                         "and indexed (recent objects), by quantile.", ["quantile"])
            for quantile, value in (("0.5", r.lag_p50), ("0.99", r.lag_p99)):
                if value is not None:
                    lag.add_metric([quantile], value)
            yield from (stored, dropped, failed, waiting, lag)
