"""The store as one object: every repository over one engine, opened and migrated (control plane).

`Store` is what the API, the CLI, chat and the web pages are handed. It is the
stream, broadcast, token, signing key, webhook, audit and profile repositories together (they share the engine and its
session factories); the chat and playback-view tables stay separate stores built
on `Store.engine`, because only their own services use them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from golive.store.audit import AuditRepository
from golive.store.broadcasts import BroadcastRepository
from golive.store.db import PoolOptions, create_engine
from golive.store.migrate import upgrade
from golive.store.preflights import PreflightRepository
from golive.store.profiles import ProfileRepository
from golive.store.signing_keys import SigningKeyRepository
from golive.store.streams import StreamRepository
from golive.store.tokens import TokenRepository
from golive.store.webhooks import WebhookRepository


class Store(
    StreamRepository, BroadcastRepository, TokenRepository, SigningKeyRepository,
    WebhookRepository, AuditRepository, ProfileRepository, PreflightRepository,
):
    """Async access to the store's database. Create with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, *, event_history: int = 1000) -> None:
        # Resolves to BroadcastRepository's (the only one that takes options); it hands
        # the engine on to the shared `Tables` base, so all of them use one set of sessions.
        super().__init__(engine, event_history=event_history)

    @classmethod
    async def open(
        cls, url: str, *, event_history: int = 1000, pool: PoolOptions | None = None
    ) -> Store:
        """Connect to `url`, bring the schema up to date, and return the store."""
        engine = create_engine(url, pool)
        try:
            store = cls(engine, event_history=event_history)
            await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()
