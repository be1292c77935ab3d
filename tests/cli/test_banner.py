"""What `golive serve` prints once it runs: where to publish with each ingest it has."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from golive.app import _print_banner


def _node(*, rtmps: bool, srt: bool) -> Any:
    return SimpleNamespace(
        settings=SimpleNamespace(data_dir=Path("/data"), advertised_host="203.0.113.5"),
        http_url="http://203.0.113.5:8080",
        rtmp_url=lambda: "rtmp://203.0.113.5:1935/live/",
        rtmps=SimpleNamespace(port=1936) if rtmps else None,
        srt=object() if srt else None,
        srt_url=lambda: "srt://203.0.113.5:9000?streamid=",
        whip=object(),
    )


def test_the_banner_names_every_ingest_the_node_has(capsys: pytest.CaptureFixture[str]) -> None:
    _print_banner(_node(rtmps=True, srt=True))
    out = capsys.readouterr().out
    assert "RTMP ingest rtmp://203.0.113.5:1935/live/STREAM_KEY" in out
    assert "RTMPS       rtmps://203.0.113.5:1936/live/STREAM_KEY" in out
    assert "SRT ingest  srt://203.0.113.5:9000?streamid=STREAM_KEY" in out
    assert "WHIP ingest http://203.0.113.5:8080/whip" in out
    _print_banner(_node(rtmps=False, srt=False))
    out = capsys.readouterr().out
    assert "RTMPS" not in out and "SRT" not in out and "RTMP ingest" in out
