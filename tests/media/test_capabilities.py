"""Encoder probing: what ffmpeg lists is not what it can use."""

from __future__ import annotations

from pathlib import Path

from tests.media.conftest import fake_ffmpeg
from tests.mediatools import FFMPEG

from golive.media.capabilities import EncoderCapabilities, detect_capabilities


async def test_detects_encoders(tmp_path: Path) -> None:
    real = await detect_capabilities(FFMPEG, refresh=True)
    assert real.libx264  # h264_nvenc depends on the machine: listed is not enough
    assert real.rung_gates  # Debian's ffmpeg has libzmq
    listed_only = fake_ffmpeg(
        tmp_path,
        'case "$*" in *-encoders*) echo " V....D libx264  x"; echo " V....D h264_nvenc  y";;\n'
        "*) exit 1;; esac\n",
    )
    caps = await detect_capabilities(listed_only)
    # (Its -filters fails too: no gates, a given-up rung costs a restart.)
    assert caps == EncoderCapabilities(libx264=True, h264_nvenc=False, rung_gates=False)
    assert await detect_capabilities(listed_only) is caps  # cached per binary
    working = fake_ffmpeg(tmp_path, 'echo " V....D h264_nvenc  y"\n', name="gpu-ffmpeg")
    assert (await detect_capabilities(working)).h264_nvenc


async def test_an_ffmpeg_that_cannot_start_is_assumed_to_have_libx264(tmp_path: Path) -> None:
    # The transcoder's own start then fails with the real error, not a made-up one.
    caps = await detect_capabilities(str(tmp_path / "no-such-ffmpeg"))
    assert caps == EncoderCapabilities(libx264=True, h264_nvenc=False, rung_gates=False)


async def test_gates_need_the_zmq_filter(tmp_path: Path) -> None:
    without_zmq = fake_ffmpeg(
        tmp_path,
        'case "$*" in *-encoders*) echo " V....D libx264  x";;\n'
        '*-filters*) echo " ... metadata  V->V  x"; echo " ... ametadata  A->A  y";;\n'
        "*) exit 1;; esac\n",
    )
    assert not (await detect_capabilities(without_zmq)).rung_gates
