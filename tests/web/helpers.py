"""Helpers shared by the browser tests: page state probes and console capture."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

PLAYING = """() => {
  const p = document.getElementById('player'), v = document.querySelector('video');
  return p && p.dataset.state === 'playing' && v.currentTime > 0.3 && v.readyState >= 3;
}"""


class ConsoleLog:
    """Collects console errors and uncaught exceptions of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")


async def join_chat(browser: Any, url: str, name: str) -> tuple[Any, Any]:
    """A viewer of its own (a browser context) on a watch page at `url`, joined to its
    chat as `name`: (context, page)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("document.getElementById('chat-state').hidden", timeout=10_000)
    await page.fill("#chat-name", name)
    await page.click("#chat-join button")
    await page.wait_for_selector("#chat-send", state="visible", timeout=10_000)
    return context, page


async def current_time(page: Any) -> float:
    value: float = await page.evaluate("document.querySelector('video').currentTime")
    return value


async def wait_playing(page: Any, timeout: float = 40) -> None:
    await page.wait_for_function(PLAYING, timeout=timeout * 1000, polling=200)


async def wait_advancing(page: Any, seconds: float, timeout: float = 30) -> None:
    """Wait until the video has played `seconds` past where it is now.

    Playback must move on, however slowly a loaded machine lets it: `timeout` only
    guards against a picture that stopped.
    """
    start = await current_time(page)
    await page.wait_for_function(
        "([start, seconds]) => document.querySelector('video').currentTime > start + seconds",
        arg=[start, seconds],
        timeout=timeout * 1000,
        polling=200,
    )


async def player_state(page: Any) -> str:
    state: str = await page.evaluate("document.getElementById('player').dataset.state")
    return state


Page = tuple[bytes, str]  # body and media type


@contextlib.contextmanager
def serve_site(page_for: Callable[[str], Page | None]) -> Iterator[str]:
    """A small web site on its own port, in a thread (another origin than the node's);
    `page_for` maps a request path and query to what to answer, or None for 404.
    Yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = page_for(self.path)
            if page is None:
                self.send_error(404)
                return
            body, kind = page
            self.send_response(200)
            self.send_header("Content-Type", kind + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
