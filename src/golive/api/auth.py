"""Bearer-token authentication for the API.

Accepted tokens: `settings.admin_token` (compared in constant time; admin scope) or an
API token from the store (`Store.authenticate_token`). Read-scope tokens may only
read; every write needs an admin token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from golive.api.errors import ApiError
from golive.settings import Settings
from golive.store import Store

Scope = Literal["admin", "read"]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token (`golive tokens create`) or the GOLIVE_ADMIN_TOKEN.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's id (None for the admin token), name and scope."""

    token_id: str | None
    name: str
    scope: Scope


class Authenticator:
    """FastAPI dependencies `reader` (any valid token) and `admin` (admin scope)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._admin_token = (
            settings.admin_token.get_secret_value().encode() if settings.admin_token else None
        )
        self._store = store

    async def authenticate(self, token: str) -> Principal | None:
        if self._admin_token and hmac.compare_digest(token.encode(), self._admin_token):
            return Principal(token_id=None, name="admin_token", scope="admin")
        record = await self._store.authenticate_token(token)
        if record is None or record.revoked_at is not None:
            return None
        scope: Scope = "admin" if record.scope == "admin" else "read"
        return Principal(token_id=record.id, name=record.name, scope=scope)

    async def reader(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401,
                "missing bearer token: send `Authorization: Bearer TOKEN`",
                headers=_CHALLENGE,
            )
        token = credentials.credentials.strip()
        principal = await self.authenticate(token) if token else None
        if principal is None:
            raise ApiError(401, "invalid or revoked API token", headers=_CHALLENGE)
        return principal

    async def admin(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        principal = await self.reader(credentials)
        if principal.scope != "admin":
            raise ApiError(
                403, f"token {principal.name!r} has read scope; this request needs an admin token"
            )
        return principal
