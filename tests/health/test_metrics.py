"""/metrics end to end: a real Prometheus scrapes a node during a real ffmpeg broadcast.

One broadcast serves every assertion (the suite's time budget): Prometheus' query API
returns the stream's series, every metric the shipped rules and dashboard name is in
the node's /metrics, the token is what lets Prometheus in, and the stream's series are
gone once the broadcast ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    node_settings,
    srt_caller,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "golive.json"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Debian package prometheus (scripts/install-system-deps.sh)")
AUTH = {"Authorization": f"Bearer {ADMIN}"}
_NAME = re.compile(r"\bgolive_[a-z0-9_]+")


def _frames(raw: str | bytes) -> list[object]:
    value = json.loads(raw)
    return value if isinstance(value, list) else [value]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def named_metrics() -> set[str]:
    """Every golive_ metric the rules and the dashboard use."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return set(_NAME.findall(ALERTS.read_text())) | {
        name for expr in exprs for name in _NAME.findall(expr)}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Prometheus on a free port; the test writes its scrape config, then reloads it."""
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\nscrape_configs: []\n")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        stop(proc)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    # No address is allowed without the token: Prometheus gets in by its token alone.
    async with Golive(node_settings(tmp_path, metrics_allow=[])) as n:
        yield n


@pytest.mark.slow
@needs_prometheus
async def test_prometheus_scrapes_a_live_broadcast(
        node: Golive, prometheus: tuple[str, Path], source_flv: Path, tmp_path: Path) -> None:
    base, config = prometheus
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN)
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", headers=AUTH,
                                 timeout=10) as api, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10) as http, \
            httpx.AsyncClient(base_url=base, timeout=10) as prom:
        stream = await create_stream(api, name="metrics")
        sid, pid = stream["id"], stream["playback_ids"][0]["id"]
        # No token, a wrong one: 403 (metrics_allow is empty).
        assert (await http.get("/metrics")).status_code == 403
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403

        # Over SRT, so the SRT series exist too (ffmpeg's latency option is in microseconds).
        proc = ffmpeg_publish(source_flv, srt_caller(node.srt_url(stream["stream_key"]) + "&latency=200000"),
                              loop=True, muxer="mpegts")
        chat = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{pid}")
        try:
            await wait_status(api, sid, "active")
            # A chat viewer who says something (chat series).
            await chat.send(json.dumps({"type": "join", "name": "metrics"}))
            await chat.send(json.dumps({"type": "send", "text": "hello"}))
            while not any(isinstance(f, dict) and f.get("type") == "message"
                          for f in _frames(await asyncio.wait_for(chat.recv(), 20))):
                pass
            config.write_text(
                "global:\n  scrape_interval: 1s\n"
                "scrape_configs:\n  - job_name: golive\n"
                "    authorization:\n      type: Bearer\n"
                f"      credentials_file: {token_file}\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{node.http_port}']\n")

            async def reloaded() -> bool | None:
                try:
                    return (await prom.post("/-/reload")).status_code == 200 or None
                except httpx.TransportError:
                    return None  # still starting

            await eventually(reloaded, timeout=30, what="Prometheus to start")

            # A player: the multivariant, a media playlist, its newest part (origin series).
            async def playlist() -> str | None:
                response = await http.get(f"/live/{pid}.m3u8")
                return response.text if response.status_code == 200 else None

            multivariant = await eventually(playlist, timeout=60, what="the ladder")
            media = next(line for line in multivariant.splitlines() if line.endswith(".m3u8"))
            text = (await http.get(f"/live/{media}")).text  # URIs relative to /live/
            part = re.findall(r'URI="([^"]*part-[0-9.]+\.m4s)"', text)[-1]
            assert (await http.get(f"/live/{pid}/{part}")).status_code == 200

            async def queried(query: str) -> list[dict[str, object]] | None:
                answer = (await prom.get("/api/v1/query", params={"query": query})).json()
                result: list[dict[str, object]] = answer["data"]["result"]
                return result or None

            for query in (f'golive_ingest_rate_bytes_per_second{{stream_id="{sid}"}}',
                          f'golive_ingest_keyframe_interval_seconds{{stream_id="{sid}"}}',
                          f'golive_encoder_speed{{stream_id="{sid}"}}',
                          f'golive_part_age_seconds{{stream_id="{sid}"}}',
                          f'golive_input_date_lag_seconds{{stream_id="{sid}"}} < 0.5',
                          f'golive_viewers{{stream_id="{sid}",protocol="ll-hls"}}',
                          'golive_origin_requests_total{kind="part",status="200"}',
                          'golive_ready == 1'):
                await eventually(lambda q=query: queried(q), timeout=60,  # type: ignore[misc]
                                 what=f"Prometheus to have {query}")
            up = await queried('up{job="golive"} == 1')
            assert up is not None  # scraped with the token

            # Every metric the rules and the dashboard name exists in the live node's /metrics.
            scraped = (await http.get("/metrics", headers=AUTH))
            assert scraped.status_code == 200
            present = sample_names(scraped.text)
            # Prometheus' own linter: names, units, suffixes, HELP, as Prometheus means them.
            assert PROMTOOL is not None
            lint = subprocess.run([PROMTOOL, "check", "metrics"], input=scraped.text,
                                  capture_output=True, text=True, timeout=30)
            assert lint.returncode == 0, lint.stdout + lint.stderr
            missing = sorted(name for name in named_metrics() if name not in present)
            assert not missing, f"named in deploy/ but not in /metrics: {missing}"
            assert f'stream_id="{sid}"' in scraped.text
            values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                      for f in text_string_to_metric_families(scraped.text) for s in f.samples}
            assert values[("golive_chat_messages_total", ())] >= 1
            assert values[("golive_chat_stream_connections", (("stream_id", sid),))] == 1
            assert values[("golive_srt_packets_received_total", (("stream_id", sid),))] > 0
            assert values[("golive_publisher_connected",
                           (("protocol", "srt"), ("stream_id", sid)))] == 1
        finally:
            await chat.close()
            stop(proc)

        # Once the broadcast has ended (reconnect window: 2 s), the stream's series are gone.
        await wait_status(api, sid, "idle", timeout=30)

        async def gone() -> bool | None:
            text = (await http.get("/metrics", headers=AUTH)).text
            return True if f'stream_id="{sid}"' not in text else None

        await eventually(gone, timeout=20, what="the stream's series to vanish")
        text = (await http.get("/metrics", headers=AUTH)).text
        assert "golive_broadcasts 0.0" in text
        assert 'golive_origin_requests_total{kind="part",status="200"}' in text  # node series stay


@needs_prometheus
def test_promtool_accepts_the_rules_and_the_example_config(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True,
                           text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 11 rules found" in rules.stdout
    # The example reads its token from a file; promtool checks that the file exists.
    example = tmp_path / "prometheus.yml"
    example.write_text(EXAMPLE.read_text().replace("/etc/prometheus/golive-admin-token",
                                                   str(tmp_path / "token")))
    (tmp_path / "token").write_text("secret")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config = subprocess.run([PROMTOOL, "check", "config", str(example)], capture_output=True,
                            text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


async def test_metrics_need_an_allowed_address_or_the_token(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, metrics_allow=["10.0.0.0/8", "2001:db8::/32"])
    async with Golive(settings) as node, httpx.AsyncClient(base_url=node.http_url,
                                                           timeout=10) as http:
        refused = await http.get("/metrics")  # from 127.0.0.1, outside metrics_allow
        assert refused.status_code == 403
        assert "metrics_allow" in refused.json()["detail"]
        allowed = await http.get("/metrics", headers=AUTH)
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
        names = sample_names(allowed.text)
        assert {"golive_publishers", "golive_process_cpu_seconds_total",
                "golive_origin_part_delivery_seconds_bucket", "golive_build_info"} <= names
    async with Golive(node_settings(tmp_path / "b")) as node, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        assert (await http.get("/metrics")).status_code == 200  # loopback, the default


async def test_scrapes_in_parallel_nodes_stay_apart(tmp_path: Path) -> None:
    """Two nodes in one process: each has its own registry (no duplicate-series error)."""
    async with Golive(node_settings(tmp_path / "a")) as a, \
            Golive(node_settings(tmp_path / "b")) as b, httpx.AsyncClient(timeout=10) as http:
        first, second = await asyncio.gather(http.get(f"{a.http_url}/metrics"),
                                             http.get(f"{b.http_url}/metrics"))
        assert first.status_code == second.status_code == 200
        assert 'golive_origin_requests_total{kind="other",status="404"}' not in first.text
        assert (await http.get(f"{a.http_url}/live/nothing-here")).status_code == 404
        again = (await http.get(f"{a.http_url}/metrics")).text
        assert 'golive_origin_requests_total{kind="other",status="404"} 1.0' in again
        other = (await http.get(f"{b.http_url}/metrics")).text
        assert 'kind="other"' not in other
