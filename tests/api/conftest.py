"""Stand-ins the API app is built with in tests that need no live broadcasts, and a store."""

from __future__ import annotations

from typing import Any

from tests.store.conftest import store  # noqa: F401  (the fixture, for these tests too)


class NoBroadcasts:
    def ingest_facts(self, stream_id: str) -> dict[str, Any] | None:
        return None

    async def stream_changed(self, stream_id: str) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
