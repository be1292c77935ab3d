"""The audit log: who changed what in the control plane, from where, and when (control plane).

One row per change (a stream created, a key reset, a ban, a token revoked, a
webhook added ...), written by the code that made the change through
`record_audit`. Rows are never updated; `list_audit` pages them newest first by id
(keyset), with filters on actor, action and target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from golive.core import utcnow
from golive.store.db import Tables
from golive.store.models import AuditEntry
from golive.store.records import AuditRecord
from golive.store.validation import check_limit

ACTOR_TYPES = ("token", "admin_token", "studio", "cli")
MAX_DETAILS_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: an API token (its id and name), the admin token, a studio
    session (the token it signed in with) or the command line; and from which address."""

    type: str
    name: str
    id: str | None = None
    remote_address: str = ""

    def __post_init__(self) -> None:
        if self.type not in ACTOR_TYPES:
            raise ValueError(f"actor type must be one of {', '.join(ACTOR_TYPES)}")


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=int(row.id), at=row.at, actor_type=row.actor_type, actor_id=row.actor_id,
        actor_name=row.actor_name, remote_address=row.remote_address, action=row.action,
        target_type=row.target_type, target_id=row.target_id, details=dict(row.details or {}),
    )


def _bounded(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as given, unless their JSON is too long: then a truncated text of it."""
    text = json.dumps(dict(details), default=str, separators=(",", ":"))
    if len(text) <= MAX_DETAILS_CHARS:
        loaded: dict[str, Any] = json.loads(text)
        return loaded
    return {"truncated": text[:MAX_DETAILS_CHARS]}


class AuditRepository(Tables):
    """Append to and read the audit log."""

    async def record_audit(self, actor: Actor, action: str, target_type: str,
                           target_id: str | None = None,
                           details: Mapping[str, Any] | None = None) -> AuditRecord:
        row = AuditEntry(
            at=utcnow(), actor_type=actor.type, actor_id=actor.id,
            actor_name=actor.name[:200], remote_address=actor.remote_address[:100],
            action=action[:64], target_type=target_type[:32],
            target_id=None if target_id is None else target_id[:64],
            details=_bounded(details or {}),
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            return _record(row)

    async def list_audit(
        self, *, limit: int = 100, before: int | None = None, actor_id: str | None = None,
        action: str | None = None, target_type: str | None = None,
        target_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditRecord]:
        """Entries newest first; `before` is the id of the last entry seen."""
        check_limit(limit)
        query = select(AuditEntry)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        if actor_id is not None:
            query = query.where(AuditEntry.actor_id == actor_id)
        if action is not None:
            # `live_stream.*` matches every action on live streams.
            if action.endswith(".*"):
                query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
            else:
                query = query.where(AuditEntry.action == action)
        if target_type is not None:
            query = query.where(AuditEntry.target_type == target_type)
        if target_id is not None:
            query = query.where(AuditEntry.target_id == target_id)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        async with self._read() as session:
            rows = (await session.scalars(
                query.order_by(AuditEntry.id.desc()).limit(limit))).all()
            return [_record(row) for row in rows]
