"""Moderation over the WebSocket (moderator chat tokens) and over the REST API."""

from __future__ import annotations

from typing import Any

from tests.chat.conftest import ChatClient, ChatNode


async def stream_id_of(chat: ChatNode) -> str:
    return str((await chat.api.get("/live-streams?limit=1")).json()["data"][0]["id"])


async def say(client: ChatClient, text: str) -> dict[str, Any]:
    await client.send(type="send", text=text)
    return await client.wait_for(lambda f: f.get("type") == "message" and f["text"] == text)


async def test_moderator_deletes_a_message(chat: ChatNode, pid: str) -> None:
    mod = await chat.connect(pid, token=await chat.token("mod-1", "Mod", ["send", "moderate"]))
    viewer = await chat.connect(pid, "viewer")
    message = await say(viewer, "something rude")
    await mod.wait_for(lambda f: f.get("id") == message["id"])
    await mod.send(type="delete", id=message["id"])
    for client in (mod, viewer):
        await client.wait_type("deleted", id=message["id"])
    late = await chat.connect(pid)
    assert not [f for f in late.frames if f.get("type") == "message"]
    # Viewers cannot moderate.
    await viewer.send(type="delete", id=message["id"])
    assert "moderators" in await viewer.error()


async def test_ban_and_timeout_over_websocket(chat: ChatNode, pid: str) -> None:
    mod = await chat.connect(pid, token=await chat.token("mod-1", "Mod", ["send", "moderate"]))
    troll = await chat.connect(pid, "troll")
    other = await chat.connect(pid, "other")
    troll_id = (await troll.wait_type("identity"))["user"]["id"]
    await mod.send(type="timeout", user_id=troll_id, seconds=120)
    await say(mod, "calm down")  # the moderator's frames are handled in order
    await troll.send(type="send", text="hey")
    reason = await troll.error()
    assert "timed out" in reason and ("120" in reason or "119" in reason)
    await mod.send(type="ban", user_id=troll_id)
    await say(mod, "bye")
    await troll.send(type="send", text="hey")
    assert "banned" in await troll.error()
    await say(other, "others still chat")  # same IP, but the ban was by user id


async def test_clear(chat: ChatNode, pid: str) -> None:
    mod = await chat.connect(pid, token=await chat.token("mod-1", "Mod", ["moderate"]))
    viewer = await chat.connect(pid, "viewer")
    await say(viewer, "one")
    await mod.send(type="clear")
    await viewer.wait_type("cleared")
    late = await chat.connect(pid)
    assert not [f for f in late.frames if f.get("type") == "message"]
    # A token without "send" may moderate but not chat.
    await mod.send(type="send", text="hello")
    assert "does not allow" in await mod.error()


async def test_rest_moderation(chat: ChatNode, pid: str) -> None:
    stream_id = await stream_id_of(chat)
    base = f"/live-streams/{stream_id}/chat"
    alice = await chat.connect(pid, "alice")
    bob = await chat.connect(pid, "bob")
    first = await say(alice, "first")
    await say(alice, "second")

    listed = (await chat.api.get(f"{base}/messages")).json()["data"]
    assert [m["text"] for m in listed] == ["second", "first"]
    assert listed[0]["user"]["name"] == "alice" and listed[0]["ip"] == "127.0.0.1"

    assert (await chat.api.delete(f"{base}/messages/{first['id']}")).status_code == 204
    await bob.wait_type("deleted", id=first["id"])
    assert (await chat.api.delete(f"{base}/messages/{first['id']}")).status_code == 404
    assert (await chat.api.delete(f"{base}/messages/999999")).status_code == 404
    listed = (await chat.api.get(f"{base}/messages?include_deleted=true")).json()["data"]
    assert listed[1]["deleted_at"] is not None

    alice_id = (await alice.wait_type("identity"))["user"]["id"]
    response = await chat.api.post(f"{base}/bans", json={"user_id": alice_id, "duration": 60})
    assert response.status_code == 201, response.text
    ban = response.json()["data"]
    assert ban["until"] is not None
    await alice.send(type="send", text="let me talk")
    assert "timed out" in await alice.error()
    bans = (await chat.api.get(f"{base}/bans")).json()["data"]
    assert [b["id"] for b in bans] == [ban["id"]]
    assert (await chat.api.delete(f"{base}/bans/{ban['id']}")).status_code == 204
    await say(alice, "free again")

    # A ban by IP hits everyone behind that address.
    response = await chat.api.post(f"{base}/bans", json={"ip": "127.0.0.1"})
    assert response.status_code == 201
    await bob.send(type="send", text="me too?")
    assert "banned" in await bob.error()
    assert (await chat.api.post(f"{base}/bans", json={})).status_code == 422

    assert (await chat.api.post(f"{base}/clear")).status_code == 204
    await bob.wait_type("cleared")
    assert (await chat.api.get(f"{base}/messages")).json()["data"] == []

    # Every moderation step is in the audit log, with its target stream.
    audit = (await chat.api.get("/audit", params={"action": "chat.*"})).json()["data"]
    assert [e["action"] for e in audit] == [
        "chat.clear", "chat.ban", "chat.lift_ban", "chat.ban", "chat.delete_message"]
    assert all(e["target"] == {"type": "live_stream", "id": stream_id} for e in audit)
    assert audit[1]["details"]["ip"] == "127.0.0.1"

    # Moderation needs chat:moderate; streams:write is not enough.
    for scopes, status in ((["streams:write"], 403), (["chat:moderate"], 204)):
        token = (await chat.api.post("/tokens", json={"name": "m", "scopes": scopes})
                 ).json()["data"]["token"]
        response = await chat.api.post(f"{base}/clear",
                                       headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text


async def test_rest_needs_admin_and_a_stream(chat: ChatNode, pid: str) -> None:
    stream_id = await stream_id_of(chat)
    response = await chat.api.post(f"/live-streams/{stream_id}/chat/clear",
                                   headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "unauthorized"
    response = await chat.api.patch("/live-streams/ls_missing/chat", json={"slow_mode": 5})
    assert response.status_code == 404
    response = await chat.api.patch(f"/live-streams/{stream_id}/chat", json={"slow_mode": -1})
    assert response.status_code == 422
    response = await chat.api.patch(f"/live-streams/{stream_id}/chat",
                                    json={"review_hook_url": "ftp://x"})
    assert response.status_code == 422
    settings = (await chat.api.get(f"/live-streams/{stream_id}/chat")).json()["data"]
    assert settings == {"slow_mode": 0, "signed_in_only": False, "review_hook_url": None,
                        "review_hook_fallback": "allow", "blocked_terms": []}


async def test_blocked_terms_refuse_messages_and_names_but_not_moderators(
    chat: ChatNode, pid: str
) -> None:
    stream_id = await stream_id_of(chat)
    base = f"/live-streams/{stream_id}/chat"
    viewer = await chat.connect(pid, "viewer")
    watcher = await chat.connect(pid, "watcher")
    mod = await chat.connect(pid, token=await chat.token("mod-1", "Mod", ["send", "moderate"]))
    response = await chat.api.patch(base, json={"blocked_terms": ["Scam", "free crypto",
                                                                   "spam*"]})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["blocked_terms"] == ["scam", "free crypto", "spam*"]
    assert (await chat.api.get(base)).json()["data"]["blocked_terms"] == [
        "scam", "free crypto", "spam*"]
    for text in ("total SCAM!", "\uff53\uff43\uff41\uff4d", "sc\u200bam", "get FREE\n crypto", "spammers"):
        await viewer.send(type="send", text=text)
        assert "does not allow" in await viewer.error(), text
    await say(viewer, "scampi and escams are fine")  # whole words only
    await say(mod, "a scam, said the moderator")  # moderators are not held to the list
    # Nobody saw what was refused.
    seen = [f["text"] for f in watcher.frames if f.get("type") == "message"]
    assert seen == ["scampi and escams are fine", "a scam, said the moderator"]
    # A display name with a term is refused; the viewer keeps the name it had.
    await viewer.send(type="join", name="ScamKing spam")
    assert "pick another" in await viewer.error()
    assert (await say(viewer, "still here"))["user"]["name"] == "viewer"
    # A name that joined before its term was added sends nothing until it joins anew.
    other = await chat.connect(pid, "Crypto Bob")
    await say(other, "hello")
    await chat.api.patch(base, json={"blocked_terms": ["Scam", "free crypto", "spam*",
                                                        "crypto"]})
    await other.send(type="send", text="hello again")
    assert "pick another" in await other.error()
    await other.send(type="join", name="Bob")
    assert (await say(other, "hello again"))["user"]["name"] == "Bob"
    await chat.api.patch(base, json={"blocked_terms": ["Scam", "free crypto", "spam*"]})
    # The audit log says how many terms, not the list.
    audit = (await chat.api.get("/audit", params={"action": "chat.update_settings"})
             ).json()["data"]
    assert audit[0]["details"]["changes"] == {"blocked_terms": 3}
    # Bounded and checked.
    for bad in (["x"] * 1001, ["a\x00b"], ["***"], "scam", [7]):
        response = await chat.api.patch(base, json={"blocked_terms": bad})
        assert response.status_code == 422, (bad, response.text)
    assert (await chat.api.patch(base, json={"blocked_terms": []})).status_code == 200
    await say(viewer, "scam talk is allowed again")
