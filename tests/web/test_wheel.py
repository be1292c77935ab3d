"""The built wheel is a working node: `pip install golive && golive serve` plays in a browser.

The wheel and sdist are built from this checkout, the wheel is installed into a fresh
virtual environment, and the watch page it serves is loaded in headless Chromium: every
asset the page asks for (hls.js included) must come from the installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS

from golive.web.assets import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "wheel-test-admin-token-0123456789abcdef"
pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.async_api")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (STATIC_DIR / "vendor" / "hls.min.js").exists():
        pytest.skip("hls.js is not built: run `make web` (scripts/build-web.sh)")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    return out


def test_wheel_and_sdist_carry_every_web_asset(dist: Path) -> None:
    wanted = {f"golive/web/static/{p.relative_to(STATIC_DIR)}"
              for p in STATIC_DIR.rglob("*") if p.is_file()}
    wanted |= {f"golive/web/templates/{p.name}" for p in (STATIC_DIR.parent / "templates").iterdir()}
    assert "golive/web/static/vendor/hls.min.js" in wanted
    (wheel,) = dist.glob("golive-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wanted <= names, sorted(wanted - names)
    (sdist,) = dist.glob("golive-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {"/".join(m.split("/")[1:]) for m in archive.getnames()}
    assert {f"src/{name}" for name in wanted} <= members


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its dependencies come from this environment's
    site-packages through a path entry (no network), never golive's source tree."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = dist.glob("golive-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return venv


@pytest.fixture
def server(installed: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    env.update(GOLIVE_DATA_DIR=str(tmp_path / "data"), GOLIVE_HOST="127.0.0.1",
               GOLIVE_HTTP_PORT=str(port), GOLIVE_RTMP_PORT="0", GOLIVE_SRT_PORT="0",
               GOLIVE_ADMIN_TOKEN=TOKEN, PYTHONPATH="")
    python = installed / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import golive; print(golive.__file__)"],
                           env=env, check=True, capture_output=True, text=True).stdout
    assert str(installed) in where, f"golive imported from {where}, not the installed wheel"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(python), "-m", "golive", "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text())
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            raise AssertionError("the installed node did not come up")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_installed_wheel_serves_a_watch_page_that_loads_the_player(
    server: str, chromium: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{server}/api/v1",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        created = await api.post("/live-streams", json={"name": "wheel"})
        assert created.status_code == 201, created.text
        playback_id = created.json()["data"]["playback_ids"][0]["id"]
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 and "/static/" in r.url else None)
            await page.goto(f"{server}/watch/{playback_id}")
            await page.wait_for_function("() => typeof window.Hls === 'function'",
                                         timeout=30_000)
            assert failed == []
        finally:
            await browser.close()
