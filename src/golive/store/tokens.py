"""API tokens: bearer secrets with scopes and an optional expiry, stored only as hashes
(control plane).

The plaintext is returned once, when the token is created; afterwards it is
recognisable by a short prefix. Revoking keeps the row, so the audit trail
still names the token. An expired token authenticates no more, like a revoked one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from golive.core import hash_api_token, new_api_token, random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import TOKEN_SCOPES, ApiToken
from golive.store.records import ApiTokenRecord
from golive.store.validation import MAX_NAME_LENGTH, check_choice, check_text

TOKEN_PREFIX_LENGTH = 8
# `authenticate_token` writes `last_used_at` at most this often per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Known scope names, deduplicated and sorted; at least one."""
    if isinstance(scopes, str):
        raise ValueError("scopes must be a list of scope names")
    clean = sorted({check_choice("scopes", scope, TOKEN_SCOPES) for scope in scopes})
    if not clean:
        raise ValueError(f"scopes must name at least one of {', '.join(TOKEN_SCOPES)}")
    return tuple(clean)


def _token_record(row: ApiToken) -> ApiTokenRecord:
    return ApiTokenRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        token_prefix=row.token_prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class TokenRepository(Tables):
    """Create, list, revoke and check API tokens."""

    async def create_api_token(
        self,
        *,
        name: str,
        scopes: Iterable[str] = ("admin",),
        expires_at: datetime | None = None,
    ) -> tuple[ApiTokenRecord, str]:
        """A new API token; the plaintext is returned here and never again."""
        check_text("name", name, MAX_NAME_LENGTH)
        clean = check_scopes(scopes)
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise ValueError("expires_at must be in the future")
        token = new_api_token()
        row = ApiToken(
            id=random_id("tok"),
            name=name,
            token_hash=hash_api_token(token),
            token_prefix=token[:TOKEN_PREFIX_LENGTH],
            scopes=" ".join(clean),
            created_at=now,
            expires_at=expires_at,
            last_used_at=None,
            revoked_at=None,
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            record = _token_record(row)
        return record, token

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        async with self._read() as session:
            rows = (
                await session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))
            ).all()
            return [_token_record(row) for row in rows]

    async def revoke_api_token(self, token_id: str) -> bool:
        """Revoke a token; True if it exists (revoking twice keeps the first time)."""
        async with self._write.begin() as session:
            row = await session.get(ApiToken, token_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True

    async def authenticate_token(self, token: str) -> ApiTokenRecord | None:
        """The live (unrevoked, unexpired) token with this plaintext, or None."""
        token_hash = hash_api_token(token)
        async with self._read() as session:
            row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
            if row is None or row.revoked_at is not None:
                return None
            record = _token_record(row)
        now = utcnow()
        if record.expires_at is not None and record.expires_at <= now:
            return None
        if record.last_used_at is not None and now - record.last_used_at < LAST_USED_RESOLUTION:
            return record
        async with self._write.begin() as session:
            result = await session.execute(
                update(ApiToken)
                .where(ApiToken.id == record.id, ApiToken.revoked_at.is_(None))
                .values(last_used_at=now)
            )
            if rowcount(result) == 0:
                return None  # revoked (or deleted) in the meantime
        return dataclasses.replace(record, last_used_at=now)
