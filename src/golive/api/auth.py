"""Bearer-token authentication and scopes for the API.

Accepted tokens: `settings.admin_token` (compared in constant time; `admin` scope) or
an API token from the store (`Store.authenticate_token`; revoked and expired ones are
refused). Every route declares the one scope it needs with `Authenticator.scope`; a
token without it gets 403 naming the scope. `admin` allows everything, and a
`NAME:write` scope allows `NAME:read` too.

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
from typing import Annotated, Any, Literal, get_args

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from golive.api.errors import ApiError
from golive.core import FailureThrottle, RepeatedLog, address_of
from golive.settings import Settings
from golive.store import Store

log = logging.getLogger(__name__)

Scope = Literal[
    "streams:read",
    "streams:write",
    "chat:moderate",
    "assets:read",
    "assets:write",
    "webhooks",
    "admin",
]
SCOPES: tuple[Scope, ...] = get_args(Scope)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token (`golive tokens create`) or the GOLIVE_ADMIN_TOKEN.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's id (None for the admin token), name and scopes."""

    token_id: str | None
    name: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        if "admin" in self.scopes or scope in self.scopes:
            return True
        family, _, access = scope.partition(":")
        return access == "read" and f"{family}:write" in self.scopes


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
    """Checks bearer tokens; `scope(NAME)` is the FastAPI dependency a route declares."""

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
        self._dependencies: dict[Scope, Any] = {}

    async def authenticate_from(self, token: str, remote: str, *,
                                surface: str = "api") -> Principal | None:
        """`authenticate`, throttled per source address: raises `Throttled` before any lookup."""
        now = self._clock()
        wait = await self.throttle.check(remote, now)
        if wait > 0:
            address = address_of(remote)
            self._log.warning(f"{surface}:{address}", now,
                              "token check throttled surface=%s address=%s retry_after=%.0fs",
                              surface, address, wait)
            raise Throttled(wait)
        principal = await self.authenticate(token) if token else None
        if principal is None:
            await self.throttle.record(remote, self._clock())
        return principal

    async def authenticate(self, token: str) -> Principal | None:
        if self._admin_token and hmac.compare_digest(token.encode(), self._admin_token):
            return Principal(token_id=None, name="admin_token", scopes=frozenset({"admin"}))
        record = await self._store.authenticate_token(token)
        if record is None or record.revoked_at is not None:
            return None
        return Principal(token_id=record.id, name=record.name, scopes=frozenset(record.scopes))

    async def principal(
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
            raise ApiError(401, "invalid, expired or revoked API token", headers=_CHALLENGE)
        return principal

    def scope(self, needed: Scope) -> Any:
        """The dependency of a route that needs `needed`: `Annotated[Principal, auth.scope(...)]`."""
        dependency = self._dependencies.get(needed)
        if dependency is None:
            async def check(
                request: Request,
                credentials: Annotated[
                    HTTPAuthorizationCredentials | None, Depends(bearer_scheme)
                ],
            ) -> Principal:
                principal = await self.principal(request, credentials)
                if not principal.allows(needed):
                    held = " ".join(sorted(principal.scopes))
                    raise ApiError(403, f"token {principal.name!r} lacks the {needed!r} scope "
                                        f"this request needs (it has: {held})")
                return principal

            dependency = self._dependencies[needed] = Depends(check)
        return dependency
