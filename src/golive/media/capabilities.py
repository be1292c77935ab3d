"""Which H.264 encoders this machine's ffmpeg can really use (stage: media).

`ffmpeg -encoders` says what was compiled in; a tiny NVENC encode says whether a GPU
is there to run it; `ffmpeg -filters` says whether its graph can take commands over
ZeroMQ (the `zmq` filter, for giving rungs up without a restart). The answer is cached per ffmpeg binary: it does not change while
the node runs, and the probe costs a process start.
"""

from __future__ import annotations

import asyncio
import logging

from golive.media.command import EncoderCapabilities

__all__ = ["EncoderCapabilities", "detect_capabilities"]

log = logging.getLogger(__name__)

_PROBE_LIMIT = 15.0  # seconds each probe may take before it counts as a failure

_capabilities_cache: dict[str, EncoderCapabilities] = {}
# A few frames through NVENC: fails fast where the encoder is compiled in but no GPU is usable.
_NVENC_TEST = (
    "-hide_banner", "-loglevel", "error",
    "-f", "lavfi", "-i", "color=black:s=256x144:r=30:d=0.2",
    "-c:v", "h264_nvenc", "-f", "null", "-",
)  # fmt: skip


async def detect_capabilities(ffmpeg: str, *, refresh: bool = False) -> EncoderCapabilities:
    """Ask `ffmpeg -encoders`, then try a tiny NVENC encode: listed is not the same as usable."""
    if not refresh and ffmpeg in _capabilities_cache:
        return _capabilities_cache[ffmpeg]
    rc, out = await _run_quietly([ffmpeg, "-hide_banner", "-encoders"], limit=_PROBE_LIMIT)
    names = {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}
    nvenc = False
    if rc == 0 and "h264_nvenc" in names:
        rc_test, _ = await _run_quietly([ffmpeg, *_NVENC_TEST], limit=_PROBE_LIMIT)
        nvenc = rc_test == 0
    rc_filters, filters = await _run_quietly([ffmpeg, "-hide_banner", "-filters"], limit=_PROBE_LIMIT)
    listed = {line.split()[1] for line in filters.splitlines() if len(line.split()) > 2}
    gates = rc_filters == 0 and {"zmq", "metadata", "ametadata"} <= listed
    # An ffmpeg that cannot even list its encoders is assumed to have libx264: the
    # transcoder's own start then fails with ffmpeg's real error instead of ours.
    caps = EncoderCapabilities(
        libx264=rc != 0 or "libx264" in names, h264_nvenc=nvenc, rung_gates=gates
    )
    log.info(
        "ffmpeg capabilities ffmpeg=%s libx264=%s h264_nvenc=%s rung_gates=%s",
        ffmpeg, caps.libx264, nvenc, gates,
    )  # fmt: skip
    _capabilities_cache[ffmpeg] = caps
    return caps


async def _run_quietly(argv: list[str], *, limit: float) -> tuple[int, str]:
    """(exit code, stdout) of a short command; -1 when it cannot start, is killed or hangs."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        return -1, str(exc)
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        out = b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1, out.decode("utf-8", "replace")
