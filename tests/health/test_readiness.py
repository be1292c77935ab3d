"""/readyz on real nodes: ready, and 503 with each reason (ffmpeg, disk, database)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine
from tests.e2e.conftest import node_settings

from golive.app import Golive
from golive.health import Readiness


async def test_a_working_node_is_ready(tmp_path: Path) -> None:
    async with Golive(node_settings(tmp_path)) as node, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        assert ready.headers["cache-control"] == "no-store"
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_not_ready_without_ffmpeg_and_with_a_full_disk(tmp_path: Path) -> None:
    # Without transcoding the node starts with no ffmpeg; a 100% free-space floor makes
    # any disk "nearly full".
    settings = node_settings(tmp_path, transcode=False, ffmpeg=str(tmp_path / "no-ffmpeg"),
                             readyz_min_free_percent=100)
    async with Golive(settings) as node, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "not ready"
        reasons = body["reasons"]
        assert len(reasons) == 2, reasons
        assert reasons[0].startswith("ffmpeg missing: ") and "no-ffmpeg" in reasons[0]
        assert reasons[1].startswith("data disk nearly full: ")
        assert "readyz_min_free_percent=100" in reasons[1]
        # Liveness is another question: the process answers.
        assert (await http.get("/healthz")).status_code == 200
        metrics = (await http.get("/metrics")).text
        ready = next(s for f in text_string_to_metric_families(metrics) for s in f.samples
                     if s.name == "golive_ready")
        assert ready.value == 0


async def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """A real SQLite engine whose file cannot be opened (its directory does not exist)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'golive.db'}")
    try:
        readiness = Readiness(engine=engine, ffmpeg=None, data_dir=tmp_path,
                              min_free_percent=0)
        assert readiness.last_reasons is None
        reasons = await readiness.check()
        assert reasons[0].startswith("database unreachable: OperationalError")
        assert reasons[1] == "ffmpeg missing: not configured and not on PATH"
        assert len(reasons) == 2
        assert readiness.last_reasons == reasons
    finally:
        await engine.dispose()
    working = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'golive.db'}")
    try:
        ffmpeg = Golive(node_settings(tmp_path)).settings.ffmpeg_path()
        readiness = Readiness(engine=working, ffmpeg=ffmpeg, data_dir=tmp_path,
                              min_free_percent=0)
        assert await readiness.check() == ()
    finally:
        await working.dispose()


async def test_a_scrape_does_not_wait_for_a_busy_database(tmp_path: Path) -> None:
    """`recent(wait=...)`: every pooled connection taken (a real SQLite engine with one),
    a due check goes on in the background and the previous reasons are answered; it
    lands once the connection is back."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'golive.db'}",
                                 pool_size=1, max_overflow=0, pool_timeout=30)
    try:
        readiness = Readiness(engine=engine, ffmpeg=None, data_dir=tmp_path,
                              min_free_percent=0)
        first = await readiness.recent(0.0, wait=0.01)  # the first check is waited for
        assert first == ("ffmpeg missing: not configured and not on PATH",)
        async with engine.connect():  # the only connection, busy
            assert await readiness.recent(0.0, wait=0.05) == first
            running = readiness._running
            assert running is not None and not running.done()
        assert await asyncio.wait_for(running, 30) == first
        assert readiness._running is None
    finally:
        await engine.dispose()
