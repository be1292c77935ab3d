"""Browser fixtures: Playwright driving Debian's Chromium against a node started in-process."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import api, node, source_480p  # noqa: F401  (fixtures reused here)

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("GOLIVE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VENDOR_HLS = (Path(__file__).resolve().parents[2]
              / "src/golive/web/static/vendor/hls.min.js")


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium missing: run scripts/install-system-deps.sh")
    if not VENDOR_HLS.exists():
        pytest.skip("hls.js is not built: run `make web` (scripts/build-web.sh)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
