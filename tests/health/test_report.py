"""The post-event report (`golive report`): tickets CSVs parsed with bounds, and one real
broadcast with induced faults rendered end to end.

The broadcast: an ffmpeg publisher over RTMP with a keyframe every 4 s (`-g 240` at
60 fps: the keyframe alert), stalled with SIGSTOP and resumed (an ingest stall that
fires and resolves), two viewers' QoE beacons posted to `/qoe`, chat messages with one
deleted and one ban, then the publisher stops and the broadcast ends. The report's
JSON is checked against what happened, its tickets against the alerts around them, and
its HTML opened in Chromium (screenshot: test-artifacts/report.png).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from tests.e2e.conftest import ADMIN, create_stream, node_settings, wait_status
from tests.health.quick import PROFILE, quick_alert_settings
from tests.health.test_alerts_live import alert_event, running
from tests.mediatools import ffmpeg_publish, make_source
from tests.web.conftest import artifacts, browser, chromium  # noqa: F401  (fixtures)

from golive.app import Golive
from golive.cli import cli
from golive.core import Event, EventType
from golive.health import (
    MAX_TICKETS_BYTES,
    TicketsError,
    build_report,
    parse_tickets,
    qoe_report,
    render_html,
    slo_results,
)
from golive.media import parse_profile
from golive.store import ChatStore, NewChatMessage, PlaybackViewStore, Store

# Tickets CSVs ------------------------------------------------------------------------------


def test_tickets_parse_in_time_order_with_bad_rows_reported() -> None:
    data = (
        "channel,time,text,agent\n"
        "email,2026-12-04T20:10:00+01:00,\"Video froze, then came back\",ann\n"
        "twitter,2026-12-04T19:05:00Z,stream is blurry,bob\n"
        "\n"
        "chat,yesterday,nothing loads,cy\n"
        "chat,2026-12-04T19:06:00,no offset,cy\n"
        "chat,2026-12-04T19:07:00Z,,cy\n"
        "chat,2026-12-04T19:08:00Z\n"
        f"chat,2026-12-04T19:09:00Z,{'x' * 2001},cy\n"
    ).encode()
    tickets, problems = parse_tickets(data)
    assert [(t.at, t.channel, t.text, t.line) for t in tickets] == [
        (datetime(2026, 12, 4, 19, 5, tzinfo=UTC), "twitter", "stream is blurry", 3),
        (datetime(2026, 12, 4, 19, 10, tzinfo=UTC), "email", "Video froze, then came back", 2),
    ]
    assert problems == [
        "line 5: time 'yesterday' is not ISO 8601 (e.g. 2026-12-04T20:15:00Z)",
        "line 6: time '2026-12-04T19:06:00' has no UTC offset (add Z or +01:00)",
        "line 7: text is empty",
        "line 8: 2 fields, the header has 4",
        "line 9: text longer than 2000 characters",
    ]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "tickets file is empty"),
    (b"when,who,what\n2026-12-04T19:05:00Z,a,b\n", "lacks column(s) time, channel, text"),
    (b"time,channel,text\n\xff\xfe,a,b\n", "is not UTF-8"),
    (b"time,channel,text\n\x00\x00\x00", "NUL bytes"),
    (b"time,channel,text\n" + b"2026-12-04T19:05:00Z,a,b\n" * 5001, "more than 5000 rows"),
    (b"time,channel,text\n2026-12-04T19:05:00Z,a,\"" + b"y" * 9000 + b"\"\n",
     "field larger than field limit"),
    (b"x" * (MAX_TICKETS_BYTES + 1), "at most"),
])
def test_hostile_tickets_files_are_refused_with_a_clear_message(data: bytes,
                                                                  message: str) -> None:
    with pytest.raises(TicketsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_tickets(data)


def test_bad_rows_are_listed_up_to_a_bound() -> None:
    data = b"time,channel,text\n" + b"never,a,b\n" * 80
    tickets, problems = parse_tickets(data)
    assert tickets == []
    assert len(problems) == 51
    assert problems[-1] == "... and 30 more bad rows"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_refuses_a_hostile_tickets_file_and_an_unknown_broadcast(tmp_path: Path) -> None:
    out = tmp_path / "out"
    big = tmp_path / "big.csv"
    big.write_bytes(b"time,channel,text\n" + b"a" * MAX_TICKETS_BYTES)
    result = _invoke("--data-dir", str(tmp_path / "data"), "report", "br_x", "--out", str(out),
                     "--tickets", str(big))
    assert result.exit_code == 1
    assert f"tickets file {big} is larger than {MAX_TICKETS_BYTES} bytes" in result.output
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"time,channel,text\n\x89PNG\r\n")
    result = _invoke("--data-dir", str(tmp_path / "data"), "report", "br_x", "--out", str(out),
                     "--tickets", str(binary))
    assert result.exit_code == 1
    assert "binary.csv: tickets file is not UTF-8 (byte 18)" in result.output
    result = _invoke("--data-dir", str(tmp_path / "data"), "report", "br_nope", "--out", str(out))
    assert result.exit_code == 1
    assert "no broadcast with id 'br_nope'" in result.output
    assert not out.exists()


# One real broadcast ------------------------------------------------------------------------


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    # A sample of the ingest every second (10 s by default): the broadcast is short.
    settings = quick_alert_settings(tmp_path, default_reconnect_window=1.0,
                                    ingest_history_interval=1)
    async with Golive(settings) as n:
        yield n


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 60 fps video with a keyframe every 240 frames (4 s)."""
    return make_source(tmp_path_factory.mktemp("report") / "gop240.flv", seconds=12,
                       size="320x180", fps=60, gop=240, video_kbps=300)


def beacons(view_id: str, startup_ms: float, stall_ms: float | None) -> dict[str, Any]:
    """A view that started after `startup_ms`, maybe stalled, and sampled latency; every
    event stamped at sending, so all of it falls inside the broadcast and one bucket."""
    events: list[dict[str, Any]] = [
        {"type": "first_frame", "t": 8000, "ms": startup_ms},
        {"type": "start", "t": 8000, "muted": True, "protocol": "hls", "player": "hls.js",
         "rendition": "360p"},
        {"type": "latency", "t": 8000, "seconds": 2.5},
    ]
    if stall_ms is not None:
        events.append({"type": "stall", "t": 8000, "ms": stall_ms})
    return {"view_id": view_id, "sent": 8000, "events": events}


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_report_of_a_broadcast_with_induced_faults(
    node: Golive, long_gop: Path, tmp_path: Path, browser: Any, artifacts: Path  # noqa: F811
) -> None:
    assert node.store is not None and node.chat is not None and node.http is not None
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="show", profile="quickalerts")
        pid = stream["playback_ids"][0]["id"]
        with running(ffmpeg_publish(long_gop, node.rtmp_url(stream["stream_key"]),
                                    loop=True)) as publisher:
            await wait_status(api, stream["id"], "active", timeout=30)
            keyframes = await alert_event(api, stream["id"], "alert.firing", "keyframe_interval")

            # Two viewers: one smooth, one slow to start that stalls for 2 s.
            transport = httpx.ASGITransport(app=node.http, client=("192.0.2.10", 40_000))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as web:
                for view_id, startup, stall in (("reportviewer-a-0001", 800.0, None),
                                                ("reportviewer-b-0002", 4000.0, 2000.0)):
                    answer = await web.post(f"/qoe/{pid}", json=beacons(view_id, startup, stall))
                    assert answer.status_code == 204, answer.text

            # Chat: five messages (the store the chat service writes), one deleted, one ban.
            chat = ChatStore(node.store.engine)
            sent = await chat.add_messages([
                NewChatMessage(stream_id=stream["id"], user_id=f"u{i}", user_name=f"viewer{i}",
                               text=f"hello {i}", ip="192.0.2.20", sent_at=datetime.now(UTC))
                for i in range(5)])
            assert await node.chat.delete_message(stream["id"], sent[0].id)
            await node.chat.ban(stream["id"], user_id="u0", ip=None, seconds=None,
                                reason="spam")

            # The stall: the publisher stops sending, its connection stays open.
            os.kill(publisher.pid, signal.SIGSTOP)
            stalled = await alert_event(api, stream["id"], "alert.firing", "ingest_stalled")
            os.kill(publisher.pid, signal.SIGCONT)
            resolved = await alert_event(api, stream["id"], "alert.resolved", "ingest_stalled")
        await wait_status(api, stream["id"], "idle", timeout=30)

    broadcasts = await node.store.list_broadcasts(stream["id"])
    assert len(broadcasts) == 1 and broadcasts[0].ended_at is not None
    broadcast = broadcasts[0]
    stall_at = datetime.fromisoformat(stalled["at"])
    tickets = tmp_path / "tickets.csv"
    tickets.write_text(
        "time,channel,text\n"
        f"{(stall_at + timedelta(seconds=20)).isoformat()},email,\"Picture froze for me "
        "<script>alert(1)</script>\"\n"
        f"{(broadcast.started_at - timedelta(hours=3)).isoformat()},chat,unrelated\n"
        "not a time,chat,broken row\n")
    out = tmp_path / "report"
    result = await asyncio.to_thread(
        _invoke, "--data-dir", str(node.settings.data_dir), "report", broadcast.id,
        "--out", str(out), "--tickets", str(tickets))
    assert result.exit_code == 0, result.output
    assert "skipped line 4: time 'not a time' is not ISO 8601" in result.output
    report = json.loads((out / "report.json").read_text())

    b = report["broadcast"]
    assert (b["id"], b["stream_id"], b["profile"], b["protocol"]) == (
        broadcast.id, stream["id"], "quickalerts@1", "rtmp")
    assert datetime.fromisoformat(b["start"]) == broadcast.started_at
    assert datetime.fromisoformat(b["end"]) == broadcast.ended_at
    assert report["events_complete"] is True
    assert b["duration_s"] == pytest.approx(
        (broadcast.ended_at - broadcast.started_at).total_seconds(), abs=0.01)

    # The alerts with their diagnoses, as the node recorded them.
    by_rule = {a["rule"]: a for a in report["alerts"]}
    kf = by_rule["keyframe_interval"]
    assert kf["alert_id"] == keyframes["data"]["alert_id"]
    assert kf["value"] == pytest.approx(4.0, abs=0.2)
    assert kf["cause"] == keyframes["data"]["cause"] and "Keyframe Interval" in kf["fix"]
    st = by_rule["ingest_stalled"]
    assert datetime.fromisoformat(st["fired_at"]) == datetime.fromisoformat(stalled["at"])
    assert datetime.fromisoformat(st["resolved_at"]) == datetime.fromisoformat(resolved["at"])
    assert "connection stays open" in st["cause"]

    # One time-ordered timeline of everything.
    timeline = report["timeline"]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    kinds = [e["kind"] for e in timeline]
    for kind in ("connected", "disconnected", "alert.firing", "alert.resolved", "qoe", "chat",
                 "moderation", "ticket"):
        assert kind in kinds, kind
    assert kinds.index("connected") < kinds.index("alert.firing") < kinds.index("disconnected")
    # Chat volume counts the messages that stayed; the deleted one is a moderation action.
    assert sum(e["messages"] for e in timeline if e["kind"] == "chat") == 4
    assert report["chat"] == {"messages": 4, "deleted": 1, "bans": 1}
    assert sorted(e["action"] for e in timeline if e["kind"] == "moderation") == [
        "ban", "delete_message"]
    # The beacons were posted during the broadcast: each view in one bucket.
    qoe = [e for e in timeline if e["kind"] == "qoe"]
    assert report["bucket_seconds"] == 10
    assert sum(e["views"] for e in qoe) == 2
    assert sum(e["views_by_protocol"].get("hls", 0) for e in qoe) == 2
    assert all(set(e["views_by_protocol"]) <= {"hls"} for e in qoe)
    assert max(e["startup_p95_s"] or 0 for e in qoe) == 4.0
    assert (report["qoe"]["startup_time_p50_s"], report["qoe"]["startup_time_p95_s"]) == (
        0.8, 4.0)

    # The publisher's ingest, sampled every second: its bitrate (300 kbit/s of video and
    # 96 of sound), its 4 s keyframes, and the stall, where the bitrate of the last 5 s fell.
    ingest = [e for e in timeline if e["kind"] == "ingest"]
    summary_in = report["ingest"]
    assert ingest and summary_in["samples"] == sum(e["samples"] for e in ingest) >= 10
    assert 200 <= summary_in["bitrate_kbps"] <= 800, summary_in
    assert summary_in["keyframe_interval_max_s"] == pytest.approx(4.0, abs=0.2)
    assert summary_in["frame_rate_min"] is not None and summary_in["srt_rtt_max_ms"] is None
    assert summary_in["bitrate_min_kbps"] < 0.75 * summary_in["bitrate_kbps"], summary_in
    around_stall = [e["bitrate_min_kbps"] for e in ingest
                    if datetime.fromisoformat(e["at"]) <= stall_at + timedelta(seconds=10)
                    and datetime.fromisoformat(e["until"]) >= stall_at - timedelta(seconds=10)]
    assert min(around_stall) < 0.75 * summary_in["bitrate_kbps"], ingest

    # SLOs: the pinned profile's targets judged by slo_results over the broadcast.
    summary = (await qoe_report(PlaybackViewStore(node.store.engine), stream["id"],
                                broadcast.started_at, broadcast.ended_at)).summary
    expected = slo_results(summary, parse_profile(PROFILE).slo)
    assert [(s["metric"], s["value"], s["target"], s["met"]) for s in report["slos"]] == [
        (r.metric, None if r.value is None else round(r.value, 4), r.target, r.met)
        for r in expected]
    startup = next(s for s in report["slos"] if s["metric"] == "startup_time_p95_s")
    assert (startup["value"], startup["met"]) == (4.0, False)
    assert report["qoe"]["views"] == 2

    # The ticket sits next to the stall it reports; the one hours before is left out.
    placed = [e for e in timeline if e["kind"] == "ticket"]
    assert [t["text"] for t in placed] == ["Picture froze for me <script>alert(1)</script>"]
    assert "ingest_stalled" in [a["rule"] for a in placed[0]["telemetry"]["alerts"]]
    assert placed[0]["telemetry"]["qoe"]
    assert report["tickets"] == {"placed": 1, "outside_broadcast": 1}

    # The page: self-contained, its plots drawn, opened in Chromium.
    page_html = (out / "report.html").read_text()
    assert "<script" not in page_html and "http://" not in page_html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    page = await browser.new_page(viewport={"width": 1150, "height": 900})
    try:
        await page.goto((out / "report.html").as_uri())
        assert await page.locator("svg.plot").count() == 6
        assert await page.locator("svg.ingest polyline.series").count() == 2
        # All views, and the one protocol they played (hls): viewers by protocol.
        assert await page.locator("svg.viewers polyline.series").count() == 2
        assert await page.locator("svg.chat rect.bar").count() >= 1
        assert await page.locator("svg.viewers line.alert-firing").count() >= 2
        assert await page.locator("svg.viewers line.ticket").count() == 1
        assert await page.locator("table.slos tr.missed").count() >= 1
        # The ticket's text is shown as text, never run.
        assert "Picture froze for me <script>alert(1)</script>" in await page.locator(
            "table.tickets").inner_text()
        assert "ingest_stalled" in await page.locator("table.tickets").inner_text()
        await page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    finally:
        await page.close()


async def test_a_quiet_broadcast_reports_no_data_and_a_live_one_is_refused(
        tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    settings.prepare_data_dir()
    store = await Store.open(settings.resolved_database_url)
    try:
        stream, _ = await store.create_stream(name="quiet")
        start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
        await store.start_broadcast(stream.id, "bc_quiet", "srt", "192.0.2.1", start)
        await store.end_broadcast("bc_quiet", start + timedelta(minutes=30))
        await store.start_broadcast(stream.id, "bc_live", "rtmp", "192.0.2.1",
                                    start + timedelta(hours=1))
    finally:
        await store.close()
    out = tmp_path / "out"
    data_dir = str(settings.data_dir)
    result = await asyncio.to_thread(_invoke, "--data-dir", data_dir, "report", "bc_live",
                                     "--out", str(out))
    assert result.exit_code == 1
    assert "broadcast bc_live has not ended; report on it afterwards" in result.output
    result = await asyncio.to_thread(_invoke, "--data-dir", data_dir, "report", "bc_quiet",
                                     "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["broadcast"]["duration_s"] == 1800
    assert report["bucket_seconds"] == 60
    assert [e["kind"] for e in report["timeline"]] == ["chat", "qoe"] * 30
    assert [s["met"] for s in report["slos"]] == [None, None, None, None]  # startup, rebuffer, latency, failures
    assert report["alerts"] == [] and report["qoe"]["views"] == 0
    assert report["events_complete"] is True
    page = (out / "report.html").read_text()
    assert page.count('<svg class="plot') == 6
    assert "no samples kept" in page
    assert "No alerts." in page and "no data" in page and "No tickets imported." in page


async def test_a_trimmed_event_log_is_reported_as_incomplete(tmp_path: Path) -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for history, complete in ((5, False), (1000, True)):
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/{history}.sqlite",
                                 event_history=history)
        try:
            stream, _ = await store.create_stream(name="long")
            await store.start_broadcast(stream.id, "bc_long", "rtmp", "192.0.2.1", start)
            await store.record_events([
                Event(EventType.LIVE_STREAM_CONNECTED, stream.id, start, "bc_long"),
                *(Event(EventType.LIVE_STREAM_WARNING, stream.id,
                        start + timedelta(seconds=10 + i), "bc_long",
                        {"code": "encoder_slow", "message": f"step {i}"}) for i in range(9)),
            ])
            await store.end_broadcast("bc_long", start + timedelta(minutes=1))
            report = await build_report(store, "bc_long")
        finally:
            await store.close()
        kinds = [e["kind"] for e in report["timeline"] if e["kind"] not in ("qoe", "chat")]
        assert report["events_complete"] is complete
        assert kinds == (["warning"] * 5 if history == 5 else ["connected", *["warning"] * 9])
        assert ("no longer reaches back" in render_html(report)) is not complete
