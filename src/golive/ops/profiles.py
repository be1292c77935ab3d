"""Release profiles (control plane): publish profile files as immutable versions, resolve
`name` or `name@version`, pin streams, and keep a live stream's pin frozen.

The files (built-ins, then `profiles_dir`, which wins by name) are the source; every
distinct version is stored once, with its content hash, author and time, and never
changes (`golive.store.ProfileRepository`). `ProfileCatalog.sync` runs before every
lookup, so a file dropped into the directory is published the next time anyone asks.
A stream with an open broadcast keeps its pin: a change is refused (`ProfileFrozen`)
unless forced with a reason and the exact fields it changes (`ForcedChange`), which
are checked against the two versions' difference so an emergency change stays narrow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from golive import __version__
from golive.core import Event, EventType
from golive.media import ProfileError, StreamProfile, builtin_profile_names, parse_profile
from golive.store import (
    ProfileConflict,
    ProfilePinRecord,
    ProfileVersionRecord,
    Store,
    StreamLive,
    StreamRecord,
)

log = logging.getLogger(__name__)

MAX_PROFILE_FILE = 64 * 1024  # bytes; a profile file is a few KiB
MAX_PROFILE_FILES = 500  # in profiles_dir; more are skipped with an error
_SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]{0,31})(?:@(?P<version>[1-9][0-9]{0,6}))?$")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*(\[[0-9]{1,2}\])?(\.[a-z_][a-z0-9_]*(\[[0-9]{1,2}\])?)*$")
MAX_FORCED_FIELDS = 32


class ProfileFrozen(Exception):
    """The stream is live and the change was not forced."""

    def __init__(self, stream_id: str, broadcast_id: str, current: str) -> None:
        super().__init__(
            f"live stream {stream_id} is live (broadcast {broadcast_id}): its profile "
            f"{current} is frozen until the broadcast ends; force the change with a reason "
            "and every field it touches"
        )
        self.broadcast_id = broadcast_id


@dataclass(frozen=True)
class ForcedChange:
    """An emergency change to a live stream's profile: why, and every field it touches."""

    reason: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class FieldChange:
    """One setting that differs between two profile versions (`path` as written in TOML)."""

    path: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class PinOutcome:
    """A stream's new pin and what it changed; `broadcast_id` is set when it was live."""

    stream: StreamRecord
    previous: str  # the label pinned before
    current: str
    changes: tuple[FieldChange, ...]
    forced: ForcedChange | None
    broadcast_id: str | None


@dataclass(frozen=True)
class SyncProblem:
    source: str
    message: str


@dataclass(frozen=True)
class _File:
    name: str
    source: str  # "built-in NAME" or the path
    author: str
    text: str
    stamp: tuple[int, int]  # (length, crc32) of the text: unchanged files are skipped


def pin_details(outcome: PinOutcome) -> dict[str, Any]:
    """What a pin changed, for its event and its audit entry; a forced one carries its
    reason, the fields it named and the settings that actually changed."""
    details: dict[str, Any] = {
        "changes": {"profile": outcome.current},
        "profile_from": outcome.previous,
    }
    if outcome.forced is not None:
        details["forced"] = {
            "reason": outcome.forced.reason,
            "fields": list(outcome.forced.fields),
            "changed": [c.as_dict() for c in outcome.changes],
        }
    return details


def pin_event(outcome: PinOutcome, by: str) -> Event:
    """The pin as `live_stream.updated`: an event of the live broadcast when there was one."""
    return Event(type=EventType.LIVE_STREAM_UPDATED, stream_id=outcome.stream.id,
                 broadcast_id=outcome.broadcast_id, data={"by": by, **pin_details(outcome)})


def parse_spec(spec: str) -> tuple[str, int | None]:
    """`name` or `name@version`; ProfileError says what a spec looks like."""
    match = _SPEC.match(spec)
    if match is None:
        raise ProfileError(
            f"invalid profile {spec!r}: use NAME or NAME@VERSION (lowercase letters, digits, "
            "- and _; VERSION a whole number from 1)"
        )
    version = match.group("version")
    return match.group("name"), None if version is None else int(version)


def document_profile(record: ProfileVersionRecord) -> StreamProfile:
    """The profile a published version holds (it was valid when published)."""
    return parse_profile(record.document, source=record.label, name=record.name)


def profile_diff(old: StreamProfile, new: StreamProfile) -> list[FieldChange]:
    """Every setting that differs, by its TOML path (`renditions[0].video_bitrate_kbps`);
    a rendition only one side has shows as its fields going from or to None."""
    before = dict(_flatten(old.model_dump(mode="json")))
    after = dict(_flatten(new.model_dump(mode="json")))
    tables = list(StreamProfile.model_fields)
    paths = list(before) + [p for p in after if p not in before]
    # In the profile's own order: by top-level table, then as the settings come.
    paths.sort(key=lambda p: tables.index(re.split(r"[.\[]", p, maxsplit=1)[0]))
    return [
        FieldChange(path, before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path) and path != "version"
    ]


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def check_forced(force: ForcedChange, changes: list[FieldChange]) -> None:
    """A forced change must name every field it touches, and only those (ValueError)."""
    if not force.reason.strip():
        raise ValueError("force.reason: say why the live profile must change")
    if not force.fields:
        raise ValueError("force.fields: name the fields the change touches")
    if len(force.fields) > MAX_FORCED_FIELDS:
        raise ValueError(f"force.fields: at most {MAX_FORCED_FIELDS} fields")
    bad = [f for f in force.fields if not _FIELD.match(f)]
    if bad:
        raise ValueError(f"force.fields: not a field path: {', '.join(map(repr, bad))}")

    def covers(field: str, path: str) -> bool:
        return path == field or path.startswith((field + ".", field + "["))

    unnamed = [c.path for c in changes if not any(covers(f, c.path) for f in force.fields)]
    if unnamed:
        raise ValueError(
            "force.fields: the change also touches " + ", ".join(unnamed)
            + "; an emergency change names every field it changes"
        )
    idle = [f for f in force.fields if not any(covers(f, c.path) for c in changes)]
    if idle:
        raise ValueError("force.fields: these do not change: " + ", ".join(idle))


class ProfileCatalog:
    """The node's profiles as published versions, and the pins of its streams."""

    def __init__(self, store: Store, profiles_dir: Path) -> None:
        self._store = store
        self._dir = profiles_dir
        # source: (stamp, problem) of the last sync that read it
        self._seen: dict[str, tuple[tuple[int, int], SyncProblem | None]] = {}
        self._lock = asyncio.Lock()

    @property
    def profiles_dir(self) -> Path:
        return self._dir

    async def sync(self) -> list[SyncProblem]:
        """Publish every profile file whose content is not stored yet; report the files that
        cannot be (invalid, or a version that would rewrite history) without stopping."""
        async with self._lock:
            files, problems = await asyncio.to_thread(self._read_files)
            for f in files:
                # An unchanged file is not published again; its problem, if it had one,
                # is reported again without logging it again.
                seen = self._seen.get(f.source)
                if seen is not None and seen[0] == f.stamp:
                    if seen[1] is not None:
                        problems.append(seen[1])
                    continue
                problem = None
                try:
                    profile = parse_profile(f.text, source=f.source, name=f.name)
                    await self._store.publish_profile_version(
                        name=profile.name, version=profile.version, document=f.text,
                        content_hash=profile.content_hash(), author=f.author, source=f.source,
                    )
                except (ProfileError, ProfileConflict) as exc:
                    problem = SyncProblem(f.source, str(exc))
                    problems.append(problem)
                    log.warning("profile not published source=%s error=%s", f.source, exc)
                self._seen[f.source] = (f.stamp, problem)
            return problems

    def _read_files(self) -> tuple[list[_File], list[SyncProblem]]:
        problems: list[SyncProblem] = []
        chosen: dict[str, _File] = {}
        for name in builtin_profile_names():
            text = resources.files("golive").joinpath("profiles", f"{name}.toml").read_text("utf-8")
            chosen[name] = _File(name, f"built-in {name}", f"golive {__version__}", text,
                                 _stamp(text))
        if self._dir.is_dir():
            paths = sorted(p for p in self._dir.glob("*.toml") if _SPEC.match(p.stem)
                           and "@" not in p.stem)
            if len(paths) > MAX_PROFILE_FILES:
                problems.append(SyncProblem(str(self._dir), f"more than {MAX_PROFILE_FILES} "
                                            "profile files; the rest are skipped"))
            for path in paths[:MAX_PROFILE_FILES]:
                try:
                    st = path.stat()
                    if st.st_size > MAX_PROFILE_FILE:
                        raise ProfileError(f"profile {path}: over {MAX_PROFILE_FILE} bytes")
                    text = path.read_text("utf-8")
                except (OSError, UnicodeDecodeError, ProfileError) as exc:
                    problems.append(SyncProblem(str(path), str(exc)))
                    continue
                chosen[path.stem] = _File(path.stem, str(path), _file_owner(st.st_uid), text,
                                          _stamp(text))
        return list(chosen.values()), problems

    async def resolve(self, spec: str) -> ProfileVersionRecord:
        """The published version `spec` names: `name` is the newest, `name@N` that one."""
        name, version = parse_spec(spec)
        await self.sync()
        if version is None:
            found = await self._store.latest_profile_version(name)
        else:
            found = await self._store.get_profile_version(name, version)
        if found is None:
            known = ", ".join(r.label for r in await self._store.list_latest_profiles())
            raise ProfileError(f"unknown profile {spec!r} (published: {known or 'none'})")
        return found

    async def current(self, stream: StreamRecord) -> ProfileVersionRecord:
        """The version a stream is pinned to (a stream from before versioning: the newest)."""
        if stream.profile_version is not None:
            found = await self._store.get_profile_version(stream.profile, stream.profile_version)
            if found is not None:
                return found
        return await self.resolve(stream.profile)

    async def pin(
        self, stream: StreamRecord, spec: str, *, by: str, force: ForcedChange | None = None,
        reason: str | None = None,
    ) -> PinOutcome:
        """Pin `stream` to `spec`. While it is live: ProfileFrozen without `force`; with it,
        ValueError unless `force.fields` are exactly what changes."""
        target = await self.resolve(spec)
        return await self._pin_to(stream, target, by=by, force=force, reason=reason)

    async def rollback(
        self, stream: StreamRecord, *, by: str, force: ForcedChange | None = None
    ) -> PinOutcome:
        """Pin the version the stream had before its current one (ValueError: none)."""
        pins = await self._store.list_profile_pins(stream.id, limit=1000)
        current = pins[0].label if pins else stream.profile_label
        earlier = next((p for p in pins if p.label != current), None)
        if earlier is None:
            raise ValueError(f"live stream {stream.id} has no earlier profile pin than {current}")
        target = await self._store.get_profile_version(earlier.name, earlier.version)
        assert target is not None  # pins refer to published versions (foreign key)
        return await self._pin_to(stream, target, by=by, force=force,
                                  reason=f"rollback from {current}")

    async def pins(self, stream_id: str, limit: int = 100) -> list[ProfilePinRecord]:
        return await self._store.list_profile_pins(stream_id, limit=limit)

    async def _pin_to(
        self, stream: StreamRecord, target: ProfileVersionRecord, *, by: str,
        force: ForcedChange | None, reason: str | None,
    ) -> PinOutcome:
        before = await self.current(stream)
        changes = profile_diff(document_profile(before), document_profile(target))
        live = await self._store.open_broadcast_id(stream.id)
        if target.label == before.label and stream.profile_version is not None and force is None:
            # Already pinned: nothing to freeze, nothing to record.
            return PinOutcome(stream=stream, previous=before.label, current=target.label,
                              changes=(), forced=None, broadcast_id=live)
        if live is not None and force is None:
            raise ProfileFrozen(stream.id, live, stream.profile_label)
        if force is not None:  # checked live or not: a forced change says what it changes
            check_forced(force, changes)
        try:
            record = await self._store.pin_stream_profile(
                stream.id, target.name, target.version, by=by,
                reason=force.reason if force is not None else reason,
                forced=live is not None, frozen_while_live=force is None,
            )
        except StreamLive as exc:  # went live between the check and the write
            raise ProfileFrozen(stream.id, exc.broadcast_id, stream.profile_label) from None
        if record is None:
            raise LookupError(stream.id)
        return PinOutcome(
            stream=record, previous=before.label, current=target.label, changes=tuple(changes),
            forced=force if live is not None else None, broadcast_id=live,
        )

    async def pin_unpinned(self, *, by: str) -> int:
        """Pin the streams made before versioning to the newest version of their profile."""
        pinned = 0
        for stream_id, name in await self._store.unpinned_streams():
            try:
                target = await self.resolve(name)
                await self._store.pin_stream_profile(
                    stream_id, target.name, target.version, by=by,
                    reason="pinned at upgrade to versioned profiles", frozen_while_live=False,
                )
                pinned += 1
            except ProfileError as exc:
                log.warning("stream not pinned stream_id=%s error=%s", stream_id, exc)
        return pinned


def _stamp(text: str) -> tuple[int, int]:
    return len(text), zlib.crc32(text.encode())


def _file_owner(uid: int) -> str:
    """Who published a user file: its owner's login name (the uid where there is none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}" if os.name == "posix" else "unknown"
