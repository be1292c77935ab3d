"""How often the interpreter hands the GIL between threads, set once by `golive serve` (control plane).

The event loop runs on one thread; the database driver (aiosqlite's thread), file and
object-store work off the loop (`off_loop`) run on others, and each of their steps
needs the GIL. CPython makes a waiting thread wait up to its switch interval (5 ms by
default) before the running one gives the GIL up, and a chat message is stored in
several such steps before it is published: under a busy loop (10,000 chat viewers in
bench/chat.py) storing took 90 ms on average. At 1 ms it took 44-58 ms, with the same
CPU. The loop gives the GIL up more often only while another thread wants it.
"""

from __future__ import annotations

import sys

__all__ = ["SWITCH_INTERVAL", "tune_thread_switching"]

SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


def tune_thread_switching() -> None:
    """Hand the GIL to a waiting thread after `SWITCH_INTERVAL` seconds."""
    sys.setswitchinterval(SWITCH_INTERVAL)
