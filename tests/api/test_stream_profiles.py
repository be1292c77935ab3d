"""A live stream's `profile` must name a profile the node has; anything else is a 422.

The profile name becomes a file name under the profiles directory when a broadcast
starts, so `../../etc/passwd` must never get as far as the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import NoBroadcasts

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core.events import EventBus
from golive.settings import Settings
from golive.store import Store

ADMIN = "test-admin-token"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    app = create_api_app(
        settings=settings,
        store=store,
        bus=EventBus(),
        broadcasts=NoBroadcasts(),
        auth=Authenticator(settings, store),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as c:
        yield c
    await store.close()


def profile_error(r: httpx.Response) -> str:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_parameters"
    [message] = error["messages"]
    assert isinstance(message, str) and message.startswith("profile: ")
    return message


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "Default", "no-such-profile"])
async def test_create_refuses_a_profile_that_names_no_profile(
    client: httpx.AsyncClient, name: str
) -> None:
    message = profile_error(await client.post("/live-streams", json={"name": "a", "profile": name}))
    assert repr(name) in message
    assert (await client.get("/live-streams")).json()["data"] == []


async def test_builtin_and_user_profiles_are_accepted(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    r = await client.post("/live-streams", json={"name": "a", "profile": "low-cpu"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["profile"] == "low-cpu@1"

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.toml").write_text(
        'version = 1\n[[renditions]]\nname = "720p"\nheight = 720\nvideo_bitrate_kbps = 2500\n'
    )
    r = await client.post("/live-streams", json={"name": "b", "profile": "mine"})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["profile"] == "mine@1"


async def test_update_refuses_an_unknown_profile_and_keeps_the_old_one(
    client: httpx.AsyncClient,
) -> None:
    created = (await client.post("/live-streams", json={"name": "a"})).json()["data"]
    url = f"/live-streams/{created['id']}"
    profile_error(await client.patch(url, json={"profile": "../../etc/passwd"}))
    assert (await client.get(url)).json()["data"]["profile"] == "default@1"
    r = await client.patch(url, json={"profile": "passthrough"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["profile"] == "passthrough@1"
