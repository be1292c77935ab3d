"""Bearer-token authentication for the API.

Accepted tokens: `settings.admin_token` (compared in constant time; admin scope) or an
API token from the store (`Store.authenticate_token`). Read-scope tokens may only
read; every write needs an admin token.

Guessing is throttled per source address (`golive.core.FailureThrottle`): every wrong
token spends one failure, and an address that has spent its burst is answered 429 with
`Retry-After` before any token is looked up. The studio's login goes through the same
`authenticate_from`, so the API and the studio share one budget per address.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from golive.api.errors import ApiError
from golive.core import FailureThrottle, RepeatedLog, address_of
from golive.settings import Settings
from golive.store import Store

log = logging.getLogger(__name__)

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


class Throttled(Exception):
    """Too many wrong tokens from this address; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many wrong API tokens from this address; "
                         f"retry in {retry_after:.0f} s")
        self.retry_after = retry_after

    @property
    def header(self) -> dict[str, str]:
        """`Retry-After` in whole seconds, never 0 (0 would invite an immediate retry)."""
        return {"Retry-After": str(max(1, round(self.retry_after + 0.49)))}


class Authenticator:
    """FastAPI dependencies `reader` (any valid token) and `admin` (admin scope)."""

    def __init__(self, settings: Settings, store: Store, *,
                 throttle: FailureThrottle | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._admin_token = (
            settings.admin_token.get_secret_value().encode() if settings.admin_token else None
        )
        self._store = store
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self._clock = clock
        self._log = RepeatedLog(log)

    async def authenticate_from(self, token: str, remote: str, *,
                                surface: str = "api") -> Principal | None:
        """`authenticate`, throttled per source address: raises `Throttled` before any lookup."""
        now = self._clock()
        wait = self.throttle.retry_after(remote, now)
        if wait > 0:
            address = address_of(remote)
            self._log.warning(f"{surface}:{address}", now,
                              "token check throttled surface=%s address=%s retry_after=%.0fs",
                              surface, address, wait)
            raise Throttled(wait)
        principal = await self.authenticate(token) if token else None
        if principal is None:
            self.throttle.failed(remote, self._clock())
        return principal

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
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401,
                "missing bearer token: send `Authorization: Bearer TOKEN`",
                headers=_CHALLENGE,
            )
        token = credentials.credentials.strip()
        remote = request.client.host if request.client else ""
        try:
            principal = await self.authenticate_from(token, remote)
        except Throttled as throttled:
            raise ApiError(429, str(throttled), headers=throttled.header) from None
        if principal is None:
            raise ApiError(401, "invalid or revoked API token", headers=_CHALLENGE)
        return principal

    async def admin(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        principal = await self.reader(request, credentials)
        if principal.scope != "admin":
            raise ApiError(
                403, f"token {principal.name!r} has read scope; this request needs an admin token"
            )
        return principal
