"""/api/v1/live-streams/ID/destinations against a real Store (SQLite in tmp_path): the URL
check at create, masked keys, live state from the relay, scopes, audit, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import NoBroadcasts

from golive.api import AuditTrail, Authenticator, create_api_app, destinations_router
from golive.core import EventBus
from golive.media import (
    DestinationState,
    DestinationView,
    ProfileError,
    StreamProfile,
    parse_profile,
)
from golive.settings import Settings
from golive.store import DestinationStore, Store, StreamRecord
from golive.store.destinations import MAX_DESTINATIONS_PER_STREAM

ADMIN = "test-admin-token"
KEY = "live_abcdefgh12345678"


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    views: dict[str, dict[str, DestinationView]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)

    async def stream(self, name: str = "s") -> str:
        r = await self.client.post("/live-streams", json={"name": name})
        assert r.status_code == 201, r.text
        stream_id: str = r.json()["data"]["id"]
        return stream_id


LADDER = """name = "event"
version = 1
[[renditions]]
name = "720p"
height = 720
video_bitrate_kbps = 2500
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 700
"""
POLICY = LADDER + """
[[destinations]]
name = "youtube"
rendition = "720p"
schemes = ["rtmps"]
hosts = ["*.youtube.com", "8.8.4.4"]
required = true
[[destinations]]
name = "backup-cdn"
hosts = ["8.8.8.8"]
max_count = 2
"""
PROFILES = {"plain": parse_profile(LADDER), "policy": parse_profile(POLICY)}


async def ladder(stream: StreamRecord) -> StreamProfile:
    """The stream's pinned profile, as the node reads it: a policy for streams named so."""
    return PROFILES["policy" if stream.name == "policy" else "plain"]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    auth = Authenticator(settings, store)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    views: dict[str, dict[str, DestinationView]] = {}
    changed: list[str] = []
    # Private targets refused, as on a default node; public addresses need no DNS.
    app.include_router(destinations_router(
        auth, store, AuditTrail(store), allow_private=False,
        status=lambda sid: views.get(sid, {}), changed=changed.append,
        profile_of=ladder))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield Api(client, store, views, changed)
    await store.close()


def reason(r: httpx.Response) -> str:
    message: str = r.json()["error"]["messages"][0]
    return message


async def test_created_listed_with_live_state_and_deleted(api: Api) -> None:
    sid = await api.stream()
    path = f"/live-streams/{sid}/destinations"
    r = await api.client.post(path, json={"name": "YouTube", "url": "rtmp://8.8.8.8/live2",
                                          "key": KEY})
    assert r.status_code == 201, r.text
    created = r.json()["data"]
    assert created["key"] == "*" * (len(KEY) - 4) + "5678" and created["status"] == "idle"
    assert created["url"] == "rtmp://8.8.8.8/live2"
    assert api.changed == [sid]  # a live broadcast is told at once
    srt = (await api.client.post(path, json={"name": "SRT", "url": "srt://8.8.4.4:9000",
                                             "key": "passphrase-0123"})).json()["data"]

    # Stored in full for the forwarder, put together with the URL only there.
    records = await DestinationStore(api.store.engine).list_destinations(sid)
    assert [d.target_url for d in records] == [
        f"rtmp://8.8.8.8/live2/{KEY}", "srt://8.8.4.4:9000?passphrase=passphrase-0123"]

    since = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    api.views[sid] = {created["id"]: DestinationView(
        state=DestinationState.ERRORED, reason="ffmpeg exited with status 1: refused",
        since=since, attempts=3, dropped_frames=0)}
    listed = (await api.client.get(path)).json()["data"]
    assert [d["id"] for d in listed] == [created["id"], srt["id"]]
    assert listed[0]["status"] == "errored" and listed[0]["attempts"] == 3
    assert listed[0]["reason"].endswith("refused")
    assert datetime.fromisoformat(listed[0]["since"]) == since
    assert listed[1]["status"] == "idle" and listed[1]["since"] is None
    assert KEY not in (await api.client.get(path)).text

    assert (await api.client.delete(f"{path}/{created['id']}")).status_code == 204
    assert (await api.client.delete(f"{path}/{created['id']}")).status_code == 404
    assert [d["id"] for d in (await api.client.get(path)).json()["data"]] == [srt["id"]]
    actions = [a.action for a in await api.store.list_audit(target_id=sid)]
    assert actions.count("live_stream.destination.create") == 2
    assert "live_stream.destination.delete" in actions
    assert all(KEY not in str(a.details) for a in await api.store.list_audit())

    # Deleting the stream deletes its destinations.
    assert (await api.client.delete(f"/live-streams/{sid}")).status_code == 204
    assert await DestinationStore(api.store.engine).list_destinations(sid) == []


@pytest.mark.parametrize(("body", "why"), [
    ({"name": "x", "url": "http://8.8.8.8/app"}, "rtmp://, rtmps:// or srt://"),
    ({"name": "x", "url": "rtmp://127.0.0.1/app"}, "destination_allow_private_targets"),
    ({"name": "x", "url": "rtmp://10.1.2.3/app"}, "not a public address"),
    ({"name": "x", "url": "srt://8.8.8.8"}, "needs a port"),
    ({"name": "x", "url": "srt://8.8.8.8:9000?mode=listener"}, "mode=caller"),
    ({"name": "x", "url": "srt://8.8.8.8:9000?passphrase=abcdefghij"}, "`key`"),
    ({"name": "x", "url": "srt://8.8.8.8:9000", "key": "short"}, "10 to 79 characters"),
])
async def test_refused_urls_answer_422_with_the_reason(
    api: Api, body: dict[str, str], why: str
) -> None:
    sid = await api.stream()
    r = await api.client.post(f"/live-streams/{sid}/destinations", json=body)
    assert r.status_code == 422, r.text
    assert why in reason(r)
    assert api.changed == []


async def test_bounds_scopes_and_unknown_streams(api: Api) -> None:
    sid = await api.stream()
    path = f"/live-streams/{sid}/destinations"
    good = {"name": "x", "url": "rtmp://8.8.8.8/app"}
    for bad in ({**good, "secret": "s"}, {**good, "name": ""}, {**good, "name": "n" * 101},
                {**good, "key": "k" * 513}, {**good, "url": "rtmp://8.8.8.8/" + "a" * 2100}):
        assert (await api.client.post(path, json=bad)).status_code == 422, bad
    missing = "/live-streams/ls_nope/destinations"
    assert (await api.client.post(missing, json=good)).status_code == 404
    assert (await api.client.get(missing)).status_code == 404
    assert (await api.client.delete(f"{path}/dst_nope")).status_code == 404

    for _ in range(MAX_DESTINATIONS_PER_STREAM):
        assert (await api.client.post(path, json=good)).status_code == 201
    r = await api.client.post(path, json=good)
    assert r.status_code == 409 and "at most" in reason(r)

    r = await api.client.post("/tokens", json={"name": "reader", "scopes": ["streams:read"]})
    reader = {"Authorization": f"Bearer {r.json()['data']['token']}"}
    assert (await api.client.get(path, headers=reader)).status_code == 200
    assert (await api.client.post(path, json=good, headers=reader)).status_code == 403
    first = (await api.client.get(path)).json()["data"][0]["id"]
    assert (await api.client.delete(f"{path}/{first}", headers=reader)).status_code == 403


async def test_a_rendition_of_the_ladder_and_patch(api: Api) -> None:
    sid = await api.stream()
    path = f"/live-streams/{sid}/destinations"
    r = await api.client.post(path, json={"name": "low", "url": "rtmp://8.8.8.8/live",
                                          "key": KEY, "rendition": "360p"})
    assert r.status_code == 201, r.text
    low = r.json()["data"]
    assert low["rendition"] == "360p"
    bad = await api.client.post(path, json={"name": "x", "url": "rtmp://8.8.8.8/live",
                                            "rendition": "1080p"})
    assert bad.status_code == 422
    assert reason(bad).startswith("rendition: must be 'source' or one of the stream's ladder "
                                  "(720p, 360p)"), reason(bad)
    source = (await api.client.post(path, json={"name": "src", "url": "rtmp://8.8.8.8/a"})
              ).json()["data"]
    assert source["rendition"] == "source"

    api.changed.clear()
    off = await api.client.patch(f"{path}/{low['id']}", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert (off.json()["data"]["enabled"], off.json()["data"]["rendition"]) == (False, "360p")
    assert api.changed == [sid]  # stopped at once when live
    moved = await api.client.patch(f"{path}/{source['id']}", json={"rendition": "720p"})
    assert moved.json()["data"]["rendition"] == "720p"
    refused = await api.client.patch(f"{path}/{source['id']}", json={"rendition": "4k"})
    assert refused.status_code == 422 and "rendition:" in reason(refused)
    unknown_field = await api.client.patch(f"{path}/{source['id']}", json={"url": "rtmp://x/y"})
    assert unknown_field.status_code == 422
    missing = await api.client.patch(f"{path}/dst_nope", json={"enabled": True})
    assert missing.status_code == 404
    records = {d.id: d for d in await DestinationStore(api.store.engine).list_destinations(sid)}
    assert (records[low["id"]].enabled, records[source["id"]].rendition) == (False, "720p")
    actions = [a.action for a in await api.store.list_audit(target_id=sid)]
    assert actions.count("live_stream.destination.update") == 2


async def test_the_profile_destination_policy(api: Api) -> None:
    sid = await api.stream("policy")
    path = f"/live-streams/{sid}/destinations"
    yt = await api.client.post(path, json={
        "name": "yt", "url": "rtmps://8.8.4.4:443/live2", "key": KEY})
    assert yt.status_code == 201, yt.text
    assert yt.json()["data"]["rendition"] == "720p"  # the class's
    other = await api.client.post(path, json={"name": "x", "url": "rtmp://1.1.1.1/live"})
    assert other.status_code == 422
    assert reason(other) == ("url: profile event@1 admits destinations of these classes "
                             "only: youtube (rtmps to *.youtube.com, 8.8.4.4); backup-cdn "
                             "(rtmp/rtmps/srt to 8.8.8.8)")
    wrong = await api.client.post(path, json={
        "name": "yt2", "url": "rtmps://8.8.4.4/live2", "rendition": "source"})
    assert wrong.status_code == 422 and reason(wrong).startswith(
        "rendition: destinations of class youtube get '720p'")
    full = await api.client.post(path, json={
        "name": "yt2", "url": "rtmps://8.8.4.4/live2"})
    assert full.status_code == 409 and "max_count 1" in reason(full)
    for n in range(2):
        cdn = await api.client.post(path, json={"name": f"cdn{n}", "url": "rtmp://8.8.8.8/a"})
        assert cdn.status_code == 201 and cdn.json()["data"]["rendition"] == "source"
    third = await api.client.post(path, json={"name": "cdn3", "url": "rtmp://8.8.8.8/a"})
    assert third.status_code == 409
    cdn_id = cdn.json()["data"]["id"]
    moved = await api.client.patch(f"{path}/{cdn_id}", json={"rendition": "360p"})
    assert moved.status_code == 422 and "class backup-cdn get 'source'" in reason(moved)


def test_destination_classes_are_validated_naming_the_field() -> None:
    policy = PROFILES["policy"]
    found = policy.destination_class("rtmps://a.rtmp.youtube.com/live2")
    assert found is not None and found.name == "youtube"
    assert policy.destination_class("rtmp://a.rtmp.youtube.com/live2") is None  # scheme
    assert policy.destination_class("rtmps://youtube.com.evil.example/x") is None
    for extra, problem in [
        ('[[destinations]]\nname = "a"\nrendition = "1080p"\n',
         "destinations: [0].rendition: '1080p' is neither 'source' nor a rendition of the "
         "ladder (720p, 360p)"),
        ('[[destinations]]\nname = "a"\nmax_count = 11\n',
         "destinations[0].max_count: must be between 1 and 10 (got 11)"),
        ('[[destinations]]\nname = "a"\n[[destinations]]\nname = "a"\n',
         "destinations: class names must be unique: a"),
        ('[[destinations]]\nname = "a"\nurl = "rtmp://x"\n',
         "destinations[0].url: unknown field"),
    ]:
        with pytest.raises(ProfileError) as caught:
            parse_profile(LADDER + extra)
        assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
