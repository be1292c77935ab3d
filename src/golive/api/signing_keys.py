"""REST endpoints of signed playback (control plane): signing keys and referrer restrictions.

`signing_keys_router` is included into the API app by the composition root, so paths
are relative to `/api/v1`. A key's private half is in the creation response and nowhere
else: golive keeps the public key, verifies tokens with it and never mints them. The
playback gate re-reads keys and restrictions within seconds (`golive.delivery.access`).
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.store import SigningKeyRecord, Store

MAX_REFERRERS = 50


class SigningKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["RS256", "ES256"] = Field(
        "RS256", description="RS256 (RSA 2048) or ES256 (ECDSA P-256).")


class SigningKeyOut(BaseModel):
    id: str = Field(description="The `kid` to put in each token's header.")
    algorithm: str
    public_key: str = Field(description="PEM (SubjectPublicKeyInfo).")
    created_at: datetime


class SigningKeyWithPrivate(SigningKeyOut):
    private_key: str = Field(description="PEM (PKCS#8). Returned only now; golive keeps no copy.")


class ReferrerRestriction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_referrers: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        None, max_length=MAX_REFERRERS,
        description="Hosts whose pages may play this playback id (`*.example.com` covers "
                    "subdomains); null lifts the restriction.")
    allow_empty_referrer: bool = Field(
        True, description="Whether requests without a Referer (apps, curl) may play it.")


class ReferrerRestrictionOut(ReferrerRestriction):
    playback_id: str


def _key_out(record: SigningKeyRecord) -> SigningKeyOut:
    return SigningKeyOut(id=record.id, algorithm=record.algorithm,
                         public_key=record.public_key, created_at=record.created_at)


def signing_keys_router(auth: Authenticator, store: Store, audit: AuditTrail) -> APIRouter:
    # Keys decide who may watch anything: only admin tokens make or remove them.
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Admin = Annotated[Principal, auth.scope("admin")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    not_found_doc: dict[int | str, dict[str, object]] = {
        404: {"model": ErrorBody, "description": "Not found"}
    }
    router = APIRouter(tags=["signed playback"])

    @router.post("/signing-keys", status_code=201, summary="Create a signing key")
    async def create_signing_key(
        request: Request, principal: Admin, body: SigningKeyCreate | None = None
    ) -> Data[SigningKeyWithPrivate]:
        algorithm = body.algorithm if body is not None else "RS256"
        record, private_pem = await store.create_signing_key(algorithm)
        await audit.record(request, principal, "signing_key.create", "signing_key", record.id,
                           algorithm=algorithm)
        return Data(data=SigningKeyWithPrivate(**_key_out(record).model_dump(),
                                               private_key=private_pem))

    @router.get("/signing-keys", summary="List signing keys (public halves)")
    async def list_signing_keys(principal: Reader) -> Data[list[SigningKeyOut]]:
        return Data(data=[_key_out(r) for r in await store.list_signing_keys()])

    @router.get("/signing-keys/{key_id}", responses=not_found_doc, summary="Get a signing key")
    async def get_signing_key(principal: Reader, key_id: str) -> Data[SigningKeyOut]:
        record = await store.get_signing_key(key_id)
        if record is None:
            raise not_found("signing key", key_id)
        return Data(data=_key_out(record))

    @router.delete("/signing-keys/{key_id}", status_code=204, responses=not_found_doc,
                   summary="Delete a signing key (its tokens stop working)")
    async def delete_signing_key(request: Request, principal: Admin, key_id: str) -> Response:
        if not await store.delete_signing_key(key_id):
            raise not_found("signing key", key_id)
        await audit.record(request, principal, "signing_key.delete", "signing_key", key_id)
        return Response(status_code=204)

    @router.put("/playback-ids/{playback_id}/referrer", responses=not_found_doc,
                summary="Restrict which pages may play a playback id")
    async def set_referrer_restriction(
        request: Request, principal: Writer, playback_id: str, body: ReferrerRestriction
    ) -> Data[ReferrerRestrictionOut]:
        try:
            found = await store.set_referrer_restriction(
                playback_id, body.allowed_referrers, body.allow_empty_referrer)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        if not found:
            raise not_found("playback id", playback_id)
        record = await store.find_stream_by_playback_id(playback_id)
        assert record is not None
        pid = record[1]
        await audit.record(request, principal, "playback_id.restrict", "playback_id",
                           playback_id, live_stream_id=record[0].id,
                           allowed_referrers=body.allowed_referrers,
                           allow_empty_referrer=body.allow_empty_referrer)
        return Data(data=ReferrerRestrictionOut(
            playback_id=playback_id,
            allowed_referrers=None if pid.allowed_referrers is None else list(pid.allowed_referrers),
            allow_empty_referrer=pid.allow_empty_referrer))

    return router
