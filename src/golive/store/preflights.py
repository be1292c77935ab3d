"""Preflight sessions and their results (control plane): one row per session, kept with
the stream (deleted with it), newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from golive.core import random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import Preflight
from golive.store.records import PreflightRecord
from golive.store.validation import check_limit

PREFLIGHT_STATUSES = ("waiting", "capturing", "analyzing", "done", "expired", "failed")


def _record(row: Preflight) -> PreflightRecord:
    return PreflightRecord(
        id=row.id, stream_id=row.stream_id, status=row.status, profile=row.profile,
        duration=float(row.duration), created_at=row.created_at, finished_at=row.finished_at,
        verdict=row.verdict, result=row.result, error=row.error,
    )


class PreflightRepository(Tables):
    async def create_preflight(self, stream_id: str, profile: str,
                               duration: float) -> PreflightRecord:
        row = Preflight(id=random_id("pf"), stream_id=stream_id, status="waiting",
                        profile=profile[:64], duration=duration, created_at=utcnow())
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            return _record(row)

    async def update_preflight(
        self, preflight_id: str, *, status: str, verdict: str | None = None,
        result: dict[str, Any] | None = None, error: str | None = None,
    ) -> PreflightRecord | None:
        if status not in PREFLIGHT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PREFLIGHT_STATUSES)}")
        async with self._write.begin() as session:
            row = await session.get(Preflight, preflight_id)
            if row is None:
                return None
            row.status = status
            if status in ("done", "expired", "failed"):
                row.finished_at = utcnow()
            if verdict is not None:
                row.verdict = verdict
            if result is not None:
                row.result = result
            if error is not None:
                row.error = error[:1000]
            await session.flush()
            return _record(row)

    async def get_preflight(self, preflight_id: str) -> PreflightRecord | None:
        async with self._read() as session:
            row = await session.get(Preflight, preflight_id)
            return None if row is None else _record(row)

    async def list_preflights(self, stream_id: str, *, limit: int = 20) -> list[PreflightRecord]:
        check_limit(limit)
        async with self._read() as session:
            rows = await session.scalars(
                select(Preflight).where(Preflight.stream_id == stream_id)
                .order_by(Preflight.created_at.desc(), Preflight.id.desc()).limit(limit)
            )
            return [_record(r) for r in rows]

    async def fail_unfinished_preflights(self, error: str) -> int:
        """Mark every session not done, failed or expired as failed; returns how many."""
        async with self._write.begin() as session:
            result = await session.execute(
                update(Preflight)
                .where(Preflight.status.in_(("waiting", "capturing", "analyzing")))
                .values(status="failed", error=error[:1000], finished_at=utcnow())
            )
            return rowcount(result)
