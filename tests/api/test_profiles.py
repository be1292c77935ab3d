"""Release profiles over the API: versions published from files, pins, the live freeze,
forced changes (narrow, audited, an event of the broadcast), rollback, diff, validate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import NoBroadcasts

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core import Event, EventBus, EventType
from golive.settings import Settings
from golive.store import Store, StoreStreamDirectory

ADMIN = "test-admin-token"

SHOW = """# a test class of stream
name = "show"
version = {version}
owner = "events team"

[[renditions]]
name = "720p"
height = 720
video_bitrate_kbps = {bitrate}

[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 700

[alerts]
min_ingest_bitrate_kbps = {floor}
"""


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    bus: EventBus
    profiles: Path

    def write(self, version: int, bitrate: int = 3000, floor: int = 150) -> str:
        text = SHOW.format(version=version, bitrate=bitrate, floor=floor)
        (self.profiles / "show.toml").write_text(text)
        return text

    async def create(self, profile: str) -> dict[str, Any]:
        r = await self.client.post("/live-streams", json={"name": "s", "profile": profile})
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    async def go_live(self, stream_id: str) -> str:
        """What the broadcast hub records when a publisher connects: an open broadcast."""
        await self.store.start_broadcast(stream_id, "bc_live", "rtmp", "127.0.0.1",
                                         datetime.now(UTC))
        return "bc_live"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    bus = EventBus()
    app = create_api_app(settings=settings, store=store, bus=bus, broadcasts=NoBroadcasts(),
                         auth=Authenticator(settings, store))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as client:
        yield Api(client, store, bus, profiles)
    await store.close()


async def test_name_pins_the_newest_version_and_name_at_version_that_one(api: Api) -> None:
    api.write(1)
    assert (await api.create("show"))["profile"] == "show@1"
    api.write(2, bitrate=2500)
    assert (await api.create("show"))["profile"] == "show@2"
    assert (await api.create("show@1"))["profile"] == "show@1"
    assert (await api.create("default@1"))["profile"] == "default@1"

    r = await api.client.post("/live-streams", json={"name": "s", "profile": "show@9"})
    assert r.status_code == 422
    [message] = r.json()["error"]["messages"]
    assert "unknown profile 'show@9'" in message and "show@2" in message
    r = await api.client.post("/live-streams", json={"name": "s", "profile": "show@0"})
    assert r.status_code == 422 and "NAME@VERSION" in r.text

    versions = (await api.client.get("/profiles/show/versions")).json()["data"]
    assert [v["label"] for v in versions] == ["show@2", "show@1"]
    assert all(v["owner"] == "events team" and len(v["content_hash"]) == 64 for v in versions)
    assert versions[0]["source"] == str(api.profiles / "show.toml")
    assert versions[0]["author"]  # the file's owner
    listed = {p["label"] for p in (await api.client.get("/profiles")).json()["data"]}
    assert {"show@2", "default@1", "low-cpu@1", "passthrough@1"} <= listed
    builtin = (await api.client.get("/profiles/default")).json()["data"]
    assert builtin["author"].startswith("golive ") and builtin["source"] == "built-in default"
    assert builtin["settings"]["renditions"][0]["name"] == "1080p"


async def test_a_published_version_never_changes(api: Api) -> None:
    original = api.write(1)
    await api.create("show")
    api.write(1, bitrate=2000)  # same version, other content: refused, the old one stays
    r = await api.client.get("/profiles/show/versions/1")
    assert r.json()["data"]["document"] == original
    assert (await api.create("show"))["profile"] == "show@1"
    # A comment is not a new version: the settings hash is what counts.
    (api.profiles / "show.toml").write_text("# reworded\n" + original)
    assert len((await api.client.get("/profiles/show/versions")).json()["data"]) == 1

    api.write(3)
    await api.create("show")
    api.write(2)  # below the newest: versions only go up
    versions = (await api.client.get("/profiles/show/versions")).json()["data"]
    assert [v["version"] for v in versions] == [3, 1]


async def test_a_live_stream_keeps_its_profile(api: Api) -> None:
    v1 = api.write(1)
    stream = await api.create("show")
    url = f"/live-streams/{stream['id']}"
    await api.go_live(stream["id"])
    api.write(2, bitrate=2500)  # a new version does not move the pin

    r = await api.client.patch(url, json={"profile": "show@2"})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["type"] == "profile_frozen"
    assert "show@1 is frozen" in error["messages"][0] and '"force"' in error["messages"][0]
    assert (await api.client.get(url)).json()["data"]["profile"] == "show@1"
    # What a broadcast starting now would run: the pinned version's own text.
    policy = await StoreStreamDirectory(api.store).policy(stream["id"])
    assert policy is not None and (policy.profile, policy.profile_document) == ("show@1", v1)
    # Other settings are not frozen, and naming the pin it has is no change.
    r = await api.client.patch(url, json={"name": "renamed", "profile": "show@1"})
    assert r.status_code == 200, r.text
    assert len((await api.client.get(f"{url}/profile/pins")).json()["data"]) == 1


async def test_a_forced_change_is_narrow_audited_and_an_event_of_the_broadcast(
    api: Api,
) -> None:
    api.write(1)
    stream = await api.create("show")
    url = f"/live-streams/{stream['id']}"
    broadcast = await api.go_live(stream["id"])
    api.write(2, bitrate=2500, floor=100)
    await api.client.get("/profiles")  # publishes show@2

    def force(*fields: str, reason: str = "uplink at 60%") -> dict[str, Any]:
        return {"profile": "show@2", "force": {"reason": reason, "fields": list(fields)}}

    r = await api.client.patch(url, json=force("renditions[0].video_bitrate_kbps"))
    assert r.status_code == 422
    assert "also touches alerts.min_ingest_bitrate_kbps" in r.text
    r = await api.client.patch(url, json=force("renditions", "alerts", "audio"))
    assert r.status_code == 422 and "do not change: audio" in r.text
    r = await api.client.patch(url, json=force("renditions", "alerts", reason=""))
    assert r.status_code == 422
    r = await api.client.patch(url, json={"name": "x", "force": {"reason": "r", "fields": ["a"]}})
    assert r.status_code == 422 and "only a change of profile" in r.text
    assert (await api.client.get(url)).json()["data"]["profile"] == "show@1"

    events = api.bus.subscribe()
    r = await api.client.patch(
        url, json=force("renditions[0].video_bitrate_kbps", "alerts.min_ingest_bitrate_kbps"))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["profile"] == "show@2"

    event = events.get_nowait()
    assert isinstance(event, Event) and event.type is EventType.LIVE_STREAM_UPDATED
    assert event.broadcast_id == broadcast
    assert event.data["changes"] == {"profile": "show@2"}
    assert event.data["profile_from"] == "show@1"
    forced = event.data["forced"]
    assert forced["reason"] == "uplink at 60%"
    assert forced["changed"] == [
        {"field": "renditions[0].video_bitrate_kbps", "old": 3000, "new": 2500},
        {"field": "alerts.min_ingest_bitrate_kbps", "old": 150, "new": 100},
    ]

    [entry] = await api.store.list_audit(action="live_stream.profile_pin")
    assert entry.target_id == stream["id"]
    assert entry.details["broadcast_id"] == broadcast
    assert entry.details["forced"]["fields"] == [
        "renditions[0].video_bitrate_kbps", "alerts.min_ingest_bitrate_kbps"]

    pins = (await api.client.get(f"{url}/profile/pins")).json()["data"]
    assert [(p["profile"], p["forced"], p["reason"]) for p in pins] == [
        ("show@2", True, "uplink at 60%"), ("show@1", False, "created")]


async def test_rollback_returns_to_the_previous_pin(api: Api) -> None:
    api.write(1)
    stream = await api.create("show")
    url = f"/live-streams/{stream['id']}"
    r = await api.client.post(f"{url}/profile/rollback")
    assert r.status_code == 422 and "no earlier profile pin" in r.text

    api.write(2, bitrate=2500)
    r = await api.client.patch(url, json={"profile": "show"})
    assert r.json()["data"]["profile"] == "show@2"
    r = await api.client.post(f"{url}/profile/rollback")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["profile"] == "show@1"
    pins = (await api.client.get(f"{url}/profile/pins")).json()["data"]
    assert [p["profile"] for p in pins] == ["show@1", "show@2", "show@1"]
    assert pins[0]["reason"] == "rollback from show@2"
    [entry] = await api.store.list_audit(action="live_stream.profile_rollback")
    assert entry.details["profile_from"] == "show@2"

    # Live: a rollback is a change like any other.
    await api.go_live(stream["id"])
    r = await api.client.post(f"{url}/profile/rollback")
    assert r.status_code == 409
    r = await api.client.post(f"{url}/profile/rollback", json={
        "force": {"reason": "2 is worse", "fields": ["renditions[0].video_bitrate_kbps"]}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["profile"] == "show@2"


async def test_diff_names_each_changed_field(api: Api) -> None:
    api.write(1)
    await api.create("show")
    api.write(2, bitrate=2500)
    r = await api.client.get("/profiles/show/diff", params={"from": 1})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {
        "from": "show@1", "to": "show@2",
        "changes": [{"field": "renditions[0].video_bitrate_kbps", "old": 3000, "new": 2500}],
    }
    r = await api.client.get("/profiles/low-cpu/diff", params={"from": 1, "to": 1})
    assert r.json()["data"]["changes"] == []
    r = await api.client.get("/profiles/show/diff", params={"from": 7})
    assert r.status_code == 404


async def test_validate_names_the_field_and_the_allowed_range(api: Api) -> None:
    bad = SHOW.format(version=1, bitrate=30, floor=150) + (
        "[audio]\nsample_rate = 32000\nloudness = -14\n[slo]\nrebuffer_percentage = 140\n"
    )
    r = await api.client.post("/profiles/validate", json={"document": bad, "name": "show"})
    assert r.status_code == 200, r.text
    result = r.json()["data"]
    assert result["valid"] is False
    assert result["errors"] == [
        "renditions[0].video_bitrate_kbps: must be between 50 and 200000 (got 30)",
        "audio.sample_rate: must be one of 44100, 48000 (got 32000)",
        "audio.loudness: unknown field (allowed: bitrate_kbps, channels, codec, "
        "loudness_target_lufs, loudness_tolerance_lu, sample_rate, true_peak_max_dbtp)",
        "slo.rebuffer_percentage: must be between 0 and 100 (got 140)",
    ]
    r = await api.client.post("/profiles/validate", json={"document": "x = [", "name": "a"})
    assert r.json()["data"]["valid"] is False
    assert r.json()["data"]["errors"][0].startswith("invalid TOML")
    good = SHOW.format(version=4, bitrate=3000, floor=150)
    r = await api.client.post("/profiles/validate", json={"document": good})
    assert r.json()["data"] == {"valid": True, "label": "show@4", "errors": []}
    r = await api.client.post("/profiles/validate", json={"document": "a" * 70_000})
    assert r.status_code == 413  # the API's body limit, before anything parses it


@pytest.mark.parametrize("path", ["/profiles/..%2F..%2Fetc", "/profiles/Default",
                                  "/profiles/default/versions/99"])
async def test_unknown_profiles_are_404(api: Api, path: str) -> None:
    assert (await api.client.get(path)).status_code == 404
