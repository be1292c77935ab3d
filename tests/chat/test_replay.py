"""Chat replay: `GET /chat/PLAYBACK_ID/replay` pages a time range of a stream's chat,
oldest first, without deleted messages, and refuses what is out of bounds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.chat.conftest import ChatNode
from tests.e2e.conftest import eventually

from golive.chat.history import ReplayRequestError, parse_replay_cursor, replay_cursor
from golive.store import ChatMessageRecord, NewChatMessage

BASE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def web(chat: ChatNode) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=chat.node.http_url, timeout=10)


async def replay(http: httpx.AsyncClient, pid: str, start: float, end: float,
                 **extra: Any) -> httpx.Response:
    return await http.get(f"/chat/{pid}/replay",
                          params={"from": f"{start:.3f}", "to": f"{end:.3f}", **extra})


async def test_live_messages_replay_in_order_without_deleted_ones(chat: ChatNode) -> None:
    stream = await chat.stream()
    pid = stream["playback_ids"][0]["id"]
    other = await chat.stream(name="other")
    started = time.time() - 1
    viewer = await chat.connect(pid, "Ann")
    for text in ("one", "two", "three"):
        await viewer.send(type="send", text=text)
    elsewhere = await chat.connect(other["playback_ids"][0]["id"], "Bob")
    await elsewhere.send(type="send", text="not here")
    async with web(chat) as http:

        async def stored() -> list[dict[str, Any]] | None:
            response = await replay(http, pid, started, time.time() + 1)
            assert response.status_code == 200, response.text
            messages: list[dict[str, Any]] = response.json()["messages"]
            return messages if len(messages) == 3 else None

        messages = await eventually(stored, what="the messages to be stored")
        assert [m["text"] for m in messages] == ["one", "two", "three"]
        assert all(m["type"] == "message" and m["user"]["name"] == "Ann" for m in messages)
        deleted = await chat.api.delete(
            f"/live-streams/{stream['id']}/chat/messages/{messages[1]['id']}")
        assert deleted.status_code == 204
        response = await replay(http, pid, started, time.time() + 1)
        assert [m["text"] for m in response.json()["messages"]] == ["one", "three"]
        assert response.headers["cache-control"] == "no-cache"  # the range is still open
        # A range before the messages is empty and, being over, may be cached briefly.
        past = await replay(http, pid, started - 100, started - 50)
        assert past.json() == {"messages": [], "next": None}
        assert past.headers["cache-control"] == "public, max-age=30"


async def test_pages_follow_sent_at_then_id(chat: ChatNode) -> None:
    stream = await chat.stream()
    pid = stream["playback_ids"][0]["id"]
    # 250 messages, two per instant (keyset ties broken by id), 10 ms apart.
    rows = [NewChatMessage(stream_id=stream["id"], user_id="u1", user_name="Ann",
                           text=f"m{i}", ip="127.0.0.1",
                           sent_at=BASE + timedelta(milliseconds=10 * (i // 2)))
            for i in range(250)]
    await chat.node.chat.messages.add_messages(rows)  # type: ignore[union-attr]
    start = BASE.timestamp()
    async with web(chat) as http:
        texts: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            extra = {"limit": "100", **({"after": cursor} if cursor else {})}
            response = await replay(http, pid, start, start + 10, **extra)
            assert response.status_code == 200, response.text
            body = response.json()
            texts += [m["text"] for m in body["messages"]]
            pages += 1
            cursor = body["next"]
            if cursor is None:
                break
        assert pages == 3
        assert texts == [f"m{i}" for i in range(250)]
        # A range is half-open: [from, to).
        window = await replay(http, pid, start + 0.1, start + 0.2)
        assert [m["text"] for m in window.json()["messages"]] == [f"m{i}" for i in range(20, 40)]


@pytest.mark.parametrize(("params", "reason"), [
    ({}, "from must be Unix seconds"),
    ({"from": "10", "to": "abc"}, "to must be Unix seconds"),
    ({"from": "10", "to": "-5"}, "to must be Unix seconds"),
    ({"from": "20", "to": "10"}, "to must be after from"),
    ({"from": "10", "to": "3611"}, "at most 3600 seconds"),
    ({"from": "10", "to": "20", "limit": "0"}, "limit must be from 1 to 200"),
    ({"from": "10", "to": "20", "limit": "201"}, "limit must be from 1 to 200"),
    ({"from": "10", "to": "20", "limit": "ten"}, "limit must be a whole number"),
    ({"from": "10", "to": "20", "after": "x"}, "cursor"),
    ({"from": "10", "to": "20", "after": "1" * 60}, "cursor"),
    ({"from": "10", "to": "99999999999"}, "to must be Unix seconds"),
])
async def test_bad_requests_are_refused(chat: ChatNode, params: dict[str, str],
                                        reason: str) -> None:
    stream = await chat.stream()
    pid = stream["playback_ids"][0]["id"]
    async with web(chat) as http:
        response = await http.get(f"/chat/{pid}/replay", params=params)
    assert response.status_code == 400
    assert reason in response.json()["error"]


async def test_unknown_and_signed_playback_ids(chat: ChatNode) -> None:
    signed = await chat.stream(playback_policy="signed")
    async with web(chat) as http:
        params = {"from": "10", "to": "20"}
        assert (await http.get("/chat/nosuchid/replay", params=params)).status_code == 404
        assert (await http.get("/chat/bad-id!/replay", params=params)).status_code == 404
        response = await http.get(f"/chat/{signed['playback_ids'][0]['id']}/replay",
                                  params=params)
        assert response.status_code == 403


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                    timezones=st.just(UTC)),
       st.integers(min_value=1, max_value=2**63 - 1))
def test_cursor_round_trips(sent_at: datetime, message_id: int) -> None:
    record = ChatMessageRecord(id=message_id, stream_id="ls_1", user_id="u", user_name="U",
                               text="t", sent_at=sent_at, deleted_at=None, ip="")
    assert parse_replay_cursor(replay_cursor(record)) == (sent_at, message_id)


@pytest.mark.parametrize("cursor", ["", "1", "1-", "-1", "a-1", "1-b", "1-2-3", " 1-2",
                                    "9" * 18 + "-1", "1-" + "9" * 20])
def test_bad_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ReplayRequestError):
        parse_replay_cursor(cursor)
