"""REST endpoints of release profiles (control plane): published versions, their
differences, validation of a profile file, and a stream's pins with rollback.

`profiles_router` serves `/profiles...` and `/live-streams/ID/profile...` (relative to
`/api/v1`). Pinning by PATCH lives with the other stream fields in `golive.api.app`;
both announce a pin through `announce_pin`: an event of the stream (of its broadcast,
when it was live) and an audit entry.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, LiveStream, ProfileForce
from golive.core import EventBus
from golive.media import ProfileError, StreamProfile, parse_profile
from golive.ops import (
    ForcedChange,
    PinOutcome,
    ProfileCatalog,
    ProfileFrozen,
    document_profile,
    parse_spec,
    pin_details,
    pin_event,
    profile_diff,
)
from golive.store import ProfilePinRecord, ProfileVersionRecord, Store, StreamRecord

MAX_DOCUMENT = 64 * 1024


class ProfileVersionOut(BaseModel):
    name: str
    version: int
    label: str = Field(description="`NAME@VERSION`, what a stream pins.")
    description: str
    owner: str
    content_hash: str = Field(description="SHA-256 of the settings (comments do not count).")
    author: str = Field(description="Who published it: golive for built-ins, else the file's owner.")
    source: str
    created_at: datetime


class ProfileVersionDetail(ProfileVersionOut):
    settings: dict[str, Any] = Field(description="Every setting, defaults filled in.")
    document: str = Field(description="The TOML as published.")


class FieldChangeOut(BaseModel):
    field: str
    old: Any
    new: Any


class ProfileDiffOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    changes: list[FieldChangeOut]


class ProfileValidate(BaseModel):
    document: str = Field(max_length=MAX_DOCUMENT, description="A profile's TOML text.")
    name: str | None = Field(None, max_length=32, description="The file's name, if any.")


class ProfileValidation(BaseModel):
    valid: bool
    label: str | None = None
    errors: list[str] = Field(
        description="Each problem: the field and what it allows "
        "(`renditions[1].video_bitrate_kbps: must be between 50 and 200000 (got 30)`)."
    )


class ProfilePinOut(BaseModel):
    profile: str = Field(description="`NAME@VERSION`")
    pinned_at: datetime
    pinned_by: str
    reason: str | None
    forced: bool = Field(description="Changed while the stream was live.")


class ProfileRollback(BaseModel):
    force: ProfileForce | None = None


def _fields(record: ProfileVersionRecord, profile: StreamProfile) -> dict[str, Any]:
    return {
        "name": record.name, "version": record.version, "label": record.label,
        "description": profile.description, "owner": profile.owner,
        "content_hash": record.content_hash, "author": record.author, "source": record.source,
        "created_at": record.created_at,
    }


def version_out(record: ProfileVersionRecord) -> ProfileVersionOut:
    return ProfileVersionOut(**_fields(record, document_profile(record)))


def version_detail(record: ProfileVersionRecord) -> ProfileVersionDetail:
    profile = document_profile(record)
    return ProfileVersionDetail(settings=profile.model_dump(mode="json"),
                                document=record.document, **_fields(record, profile))


def pin_out(record: ProfilePinRecord) -> ProfilePinOut:
    return ProfilePinOut(profile=record.label, pinned_at=record.pinned_at,
                         pinned_by=record.pinned_by, reason=record.reason, forced=record.forced)


def forced_change(body: ProfileForce | None) -> ForcedChange | None:
    return None if body is None else ForcedChange(reason=body.reason, fields=tuple(body.fields))


def frozen(exc: ProfileFrozen) -> ApiError:
    return ApiError(409, f'{exc} ("force": {{"reason": ..., "fields": [...]}})',
                    type="profile_frozen")


def profile_unknown(exc: ProfileError) -> ApiError:
    return ApiError(422, f"profile: {exc}")


async def announce_pin(
    bus: EventBus, trail: AuditTrail, request: Request, principal: Principal,
    outcome: PinOutcome, action: str,
) -> None:
    """The pin as a `live_stream.updated` event (of the live broadcast, if any) and an audit
    entry; a forced one carries its reason, named fields and the actual changes."""
    bus.publish(pin_event(outcome, principal.name))
    await trail.record(request, principal, action, "live_stream", outcome.stream.id,
                       broadcast_id=outcome.broadcast_id, **pin_details(outcome))


def profiles_router(
    auth: Authenticator, store: Store, catalog: ProfileCatalog, bus: EventBus,
    trail: AuditTrail, stream_out: Callable[[Request, StreamRecord], LiveStream],
) -> APIRouter:
    """`stream_out(request, record)` renders a live stream as the API shows it."""
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    router = APIRouter(tags=["profiles"])

    async def version(name: str, number: int | None) -> ProfileVersionRecord:
        spec = name if number is None else f"{name}@{number}"
        try:
            return await catalog.resolve(spec)
        except ProfileError as exc:
            raise ApiError(404, str(exc)) from None

    async def stream(stream_id: str) -> StreamRecord:
        record = await store.get_stream(stream_id)
        if record is None:
            raise not_found("live stream", stream_id)
        return record

    @router.get("/profiles", summary="Published profiles (newest version of each)")
    async def list_profiles(principal: Reader) -> Data[list[ProfileVersionOut]]:
        await catalog.sync()
        return Data(data=[version_out(r) for r in await store.list_latest_profiles()])

    @router.get("/profiles/{name}", summary="A profile's newest version, every setting")
    async def get_profile(principal: Reader, name: str) -> Data[ProfileVersionDetail]:
        return Data(data=version_detail(await version(name, None)))

    @router.get("/profiles/{name}/versions", summary="A profile's published versions, newest first")
    async def list_versions(
        principal: Reader, name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Data[list[ProfileVersionOut]]:
        await version(name, None)  # 404 for a name never published
        return Data(data=[version_out(r) for r in
                          await store.list_profile_versions(name, limit=limit)])

    @router.get("/profiles/{name}/versions/{number}", summary="One published version")
    async def get_version(
        principal: Reader, name: str, number: int
    ) -> Data[ProfileVersionDetail]:
        return Data(data=version_detail(await version(name, number)))

    @router.get("/profiles/{name}/diff", summary="What changed between two versions")
    async def diff(
        principal: Reader, name: str,
        from_: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
        to: Annotated[int | None, Query(ge=1, le=1_000_000, description="Default: newest")] = None,
    ) -> Data[ProfileDiffOut]:
        old, new = await version(name, from_), await version(name, to)
        changes = profile_diff(document_profile(old), document_profile(new))
        return Data(data=ProfileDiffOut.model_validate({
            "from": old.label, "to": new.label,
            "changes": [c.as_dict() for c in changes],
        }))

    @router.post("/profiles/validate", summary="Check a profile file without publishing it")
    async def validate(principal: Reader, body: ProfileValidate) -> Data[ProfileValidation]:
        return Data(data=validate_document(body.document, body.name))

    @router.get("/live-streams/{stream_id}/profile/pins",
                summary="The stream's profile pins, newest (current) first")
    async def list_pins(
        principal: Reader, stream_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Data[list[ProfilePinOut]]:
        await stream(stream_id)
        return Data(data=[pin_out(p) for p in await catalog.pins(stream_id, limit)])

    @router.post("/live-streams/{stream_id}/profile/rollback",
                 summary="Pin the profile version the stream had before its current one")
    async def rollback(
        request: Request, principal: Writer, stream_id: str,
        body: Annotated[ProfileRollback | None, Body()] = None,
    ) -> Data[LiveStream]:
        record = await stream(stream_id)
        try:
            outcome = await catalog.rollback(
                record, by=principal.name, force=forced_change(body.force if body else None))
        except ProfileFrozen as exc:
            raise frozen(exc) from None
        await announce_pin(bus, trail, request, principal, outcome, "live_stream.profile_rollback")
        return Data(data=stream_out(request, outcome.stream))

    return router


def validate_document(document: str, name: str | None = None) -> ProfileValidation:
    """Whether `document` is a valid profile, and if not every problem in it."""
    if name is not None:
        try:
            parse_spec(name)
        except ProfileError as exc:
            return ProfileValidation(valid=False, errors=[str(exc)])
    try:
        profile: StreamProfile = parse_profile(document, source="document", name=name)
    except ProfileError as exc:
        return ProfileValidation(valid=False, errors=exc.problems)
    return ProfileValidation(valid=True, label=profile.label, errors=[])
