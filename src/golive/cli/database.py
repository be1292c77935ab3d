"""The database behind management commands (control plane): open `Store`, run one action.

Commands talk to the same database a running server uses (SQLite in WAL mode makes
sharing the file safe); every failure becomes one line instead of a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from golive.cli.config import refuse
from golive.settings import Settings, SettingsProblem

if TYPE_CHECKING:
    from golive.store import Store

T = TypeVar("T")


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run `action`, close it; store errors become one-line messages."""
    if not settings.database_url:
        try:
            settings.prepare_data_dir()  # SQLite lives there
        except SettingsProblem as problem:
            raise refuse(problem) from None

    async def go() -> T:
        from golive.store import Store

        store = await Store.open(
            settings.resolved_database_url, event_history=settings.event_history,
            pool=settings.database_pool,
        )
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except click.ClickException:
        raise
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"database error ({type(exc).__name__}): {exc}") from None
