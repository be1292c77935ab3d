"""PlaybackAccess: every refusal path of signed playback, the verified-token cache, referrers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tests.delivery.signing import KeyRing

from golive.delivery import (
    Grant,
    PlaybackAccess,
    PlaybackRule,
    Refusal,
    Viewer,
    mint_playback_token,
    session_key_from,
)
from golive.delivery.access import referrer_allowed

V = Viewer("hls", "192.0.2.1", "test-player/1.0")


@pytest.fixture
def ring() -> KeyRing:
    r = KeyRing()
    r.add_key("k1", "ES256")
    r.add_key("k2", "RS256")
    r.add_playback("sig", signed=True)
    r.add_playback("pub", signed=False)
    return r


def refused(verdict: Grant | Refusal, status: int = 403) -> str:
    assert isinstance(verdict, Refusal), verdict
    assert verdict.status == status
    return verdict.reason


def b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_public_needs_no_token_and_unknown_is_404(ring: KeyRing) -> None:
    access = PlaybackAccess(ring)
    grant = await access.check("pub", None, audience="v", viewer=V)
    assert isinstance(grant, Grant) and grant.claims is None
    assert "no such playback id" in refused(await access.check("nope", None, audience="v", viewer=V), 404)


async def test_a_valid_token_is_verified_once_then_served_from_the_cache(ring: KeyRing) -> None:
    access = PlaybackAccess(ring)
    token = ring.token("sig", "k1")
    for _ in range(100):
        grant = await access.check("sig", token, audience="v", viewer=V)
        assert isinstance(grant, Grant) and grant.claims is not None
        assert grant.claims["sub"] == "sig"
    assert access.signature_checks == 1
    assert ring.rule_reads == 1 and ring.key_reads == 1


@pytest.mark.parametrize("kid", ["k1", "k2"])
async def test_both_algorithms_and_rotation(ring: KeyRing, kid: str) -> None:
    access = PlaybackAccess(ring, key_ttl=0.0)
    token = ring.token("sig", kid)
    assert isinstance(await access.check("sig", token, audience="v", viewer=V), Grant)
    ring.add_key("k3")  # a new key does not end the old one's tokens
    assert isinstance(await access.check("sig", token, audience="v", viewer=V), Grant)
    del ring.keys[kid]  # deleting it does, cached or not
    assert "no longer exists" in refused(await access.check("sig", token, audience="v", viewer=V))
    fresh = ring.token("sig", kid, expires_in=1800)  # not the cached one (RS256 is deterministic)
    assert "unknown" in refused(await access.check("sig", fresh, audience="v", viewer=V))


async def test_refusals(ring: KeyRing) -> None:
    access = PlaybackAccess(ring)
    now = time.time()
    check = access.check
    assert "token is required" in refused(await check("sig", None, audience="v", viewer=V))
    assert "not a JWT" in refused(await check("sig", "garbage", audience="v", viewer=V))
    assert "another playback id" in refused(
        await check("sig", ring.token("other", "k1"), audience="v", viewer=V))
    assert "not for chat" in refused(
        await check("sig", ring.token("sig", "k1"), audience="c", viewer=V))
    past = mint_playback_token(ring.private["k1"], key_id="k1", playback_id="sig",
                               audience="v", expires_in=60, now=now - 120)
    assert "expired" in refused(await check("sig", past, audience="v", viewer=V))
    assert "not valid yet" in refused(
        await check("sig", ring.token("sig", "k1", not_before=now + 600), audience="v", viewer=V))
    too_long = "a" * 5000
    assert "longer than" in refused(await check("sig", too_long, audience="v", viewer=V))


async def test_forged_algorithms_are_refused_before_any_signature_check(ring: KeyRing) -> None:
    access = PlaybackAccess(ring)
    claims = {"sub": "sig", "aud": "v", "exp": int(time.time()) + 600}
    # alg=none, unsigned
    none = f"{b64({'alg': 'none', 'kid': 'k1', 'typ': 'JWT'})}.{b64(claims)}."
    assert "'none' is not accepted" in refused(await access.check("sig", none, audience="v", viewer=V))
    # HS256 "signed" with the public key as the HMAC secret (the classic confusion)
    public = ring.keys["k2"].public_key_pem.encode()
    header = b64({"alg": "HS256", "kid": "k2", "typ": "JWT"})
    body = f"{header}.{b64(claims)}"
    mac = hmac.new(public, body.encode(), hashlib.sha256).digest()
    assert "'HS256' is not accepted" in refused(
        await access.check("sig", f"{body}.{b64(mac)}", audience="v", viewer=V))
    # an RS256 token presented under the ES256 key's id
    rsa_private = load_pem_private_key(ring.private["k2"].encode(), None)
    crossed = jwt.encode(claims, rsa_private, algorithm="RS256",  # type: ignore[arg-type]
                         headers={"kid": "k1"})
    assert "signed with RS256, but its key is ES256" in refused(
        await access.check("sig", crossed, audience="v", viewer=V))
    # a token signed by a key golive does not have, under a real kid
    stranger = KeyRing()
    stranger.add_key("k1", "ES256")
    assert "signature does not verify" in refused(
        await access.check("sig", stranger.token("sig", "k1"), audience="v", viewer=V))
    # no kid, and missing claims
    es_private = load_pem_private_key(ring.private["k1"].encode(), None)
    no_kid = jwt.encode(claims, es_private, algorithm="ES256")  # type: ignore[arg-type]
    assert "no kid" in refused(await access.check("sig", no_kid, audience="v", viewer=V))
    no_exp = jwt.encode({"sub": "sig", "aud": "v"}, es_private,  # type: ignore[arg-type]
                        algorithm="ES256", headers={"kid": "k1"})
    assert "no 'exp' claim" in refused(await access.check("sig", no_exp, audience="v", viewer=V))
    assert access.signature_checks == 2  # only the stranger's and the claim-less token


async def test_a_cached_token_still_expires(ring: KeyRing) -> None:
    now = [time.time()]
    access = PlaybackAccess(ring, clock=lambda: now[0])
    token = ring.token("sig", "k1", expires_in=30)
    for _ in range(3):  # verified, then granted from the cache, then the kept grant
        assert isinstance(await access.check("sig", token, audience="v", viewer=V), Grant)
    assert access.check_now("sig", token, audience="v", referrer=None, own_host=None)
    now[0] += 31
    assert access.check_now("sig", token, audience="v", referrer=None, own_host=None) is None
    assert "expired" in refused(await access.check("sig", token, audience="v", viewer=V))


async def test_a_kept_grant_lasts_no_longer_than_the_rule_it_was_made_from(
        ring: KeyRing) -> None:
    ticks = [1000.0]
    access = PlaybackAccess(ring, rule_ttl=5, monotonic=lambda: ticks[0])
    token = ring.token("sig", "k1")
    for _ in range(3):
        assert isinstance(await access.check("sig", token, audience="v", viewer=V), Grant)
    ticks[0] += 4.9
    assert access.check_now("sig", token, audience="v", referrer=None, own_host=None)
    # The rule changes; once its cached copy is stale, the grant made from it is too.
    ticks[0] += 0.2
    ring.add_playback("sig", signed=True, allowed_referrers=("example.com",),
                      allow_empty_referrer=False)
    assert access.check_now("sig", token, audience="v", referrer=None, own_host=None) is None
    assert "Referer" in refused(await access.check("sig", token, audience="v", viewer=V))


async def settled(reads: Callable[[], int]) -> int:
    """`reads()` once the background loads the last step started have run."""
    for _ in range(5):
        await asyncio.sleep(0)
    return reads()


@pytest.mark.parametrize("playback_id", ["pub", "sig"])
async def test_a_rule_and_key_in_use_are_reloaded_before_they_expire(
        ring: KeyRing, playback_id: str) -> None:
    # When the rule expired, every request the loop read before the reload's task ran
    # (360-1,350 of a 2,000-viewer burst, counted in bench/origin.py) missed and took
    # the slow path together: 5-20 ms of part delivery p99 at 2,000 viewers.
    ticks = [1000.0]
    access = PlaybackAccess(ring, rule_ttl=4, key_ttl=8, monotonic=lambda: ticks[0])
    token = ring.token("sig", "k1") if playback_id == "sig" else None

    def now() -> Grant | None:
        return access.check_now(playback_id, token, audience="v", referrer=None,
                                own_host=None)

    assert isinstance(await access.check(playback_id, token, audience="v", viewer=V), Grant)
    assert isinstance(now(), Grant) and ring.rule_reads == 1
    ticks[0] += 2.9  # before three quarters of the rule's TTL: nothing is read again
    assert isinstance(now(), Grant) and await settled(lambda: ring.rule_reads) == 1
    ticks[0] += 0.2  # past them: still served, and read again in the background, once
    for _ in range(50):
        assert isinstance(now(), Grant)
    assert await settled(lambda: ring.rule_reads) == 2
    ticks[0] += 1.5  # past the first read's TTL, within the second's: no miss
    assert isinstance(now(), Grant)
    if token is not None:  # the key, read at the first check, is reloaded the same way
        ticks[0] += 1.5
        assert isinstance(now(), Grant) and await settled(lambda: ring.key_reads) == 2
    # A change still takes effect within the TTL: unread for longer, the rule expires.
    ring.add_playback(playback_id, signed=True, allowed_referrers=("example.com",),
                      allow_empty_referrer=False)
    ticks[0] += 4.1
    assert now() is None
    assert "Referer" in refused(await access.check(playback_id, token, audience="v", viewer=V))


@dataclass
class FailingRing(KeyRing):
    down: bool = False

    async def playback_rule(self, playback_id: str) -> PlaybackRule | None:
        if self.down:
            raise ConnectionError("the database is down")
        return await super().playback_rule(playback_id)


async def test_a_failed_background_reload_leaves_the_value_to_expire(
        caplog: pytest.LogCaptureFixture) -> None:
    ring = FailingRing()
    ring.add_playback("pub", signed=False)
    ticks = [1000.0]
    access = PlaybackAccess(ring, rule_ttl=4, monotonic=lambda: ticks[0])
    assert isinstance(await access.check("pub", None, audience="v", viewer=V), Grant)
    ring.down = True
    ticks[0] += 3.5
    assert isinstance(access.check_now("pub", None, audience="v", referrer=None,
                                       own_host=None), Grant)
    await settled(lambda: 0)
    assert "background reload failed" in caplog.text and "database is down" in caplog.text
    ticks[0] += 1.0  # expired: the next request waits for a read, and sees its error
    with pytest.raises(ConnectionError):
        await access.check("pub", None, audience="v", viewer=V)


async def test_the_token_cache_is_bounded(ring: KeyRing) -> None:
    access = PlaybackAccess(ring, max_tokens=3)
    tokens = [ring.token("sig", "k1", expires_in=600 + i) for i in range(5)]
    for token in tokens:
        assert isinstance(await access.check("sig", token, audience="v", viewer=V), Grant)
    assert len(access._tokens) == 3
    assert isinstance(await access.check("sig", tokens[0], audience="v", viewer=V), Grant)
    assert access.signature_checks == 6  # the first was evicted and verified again


def test_referrer_restrictions() -> None:
    rule = PlaybackRule("p", "s", False, ("example.com", "*.shop.example"), False)
    assert referrer_allowed(rule, "https://example.com/watch")
    assert referrer_allowed(rule, "https://a.b.shop.example/x")
    assert referrer_allowed(rule, "https://shop.example/")
    assert not referrer_allowed(rule, "https://evil.com/?example.com")
    assert not referrer_allowed(rule, "https://notshop.example/")
    assert not referrer_allowed(rule, None)
    assert referrer_allowed(rule, "http://golive.local:8080/watch/p", "golive.local:8080")
    open_rule = PlaybackRule("p", "s", False, ("example.com",), True)
    assert referrer_allowed(open_rule, "")
    assert referrer_allowed(PlaybackRule("p", "s", False), "https://anything.test/")


async def test_referrer_refusal_comes_before_the_token(ring: KeyRing) -> None:
    ring.add_playback("shop", signed=True, allowed_referrers=("example.com",),
                      allow_empty_referrer=False)
    access = PlaybackAccess(ring)
    token = ring.token("shop", "k1")
    assert "referrer not allowed" in refused(
        await access.check("shop", token, audience="v", viewer=V, referrer="https://evil.test/"))
    assert "needs a Referer" in refused(await access.check("shop", token, audience="v", viewer=V))
    assert isinstance(await access.check("shop", token, audience="v", viewer=V,
                                         referrer="https://example.com/p"), Grant)


async def test_what_a_token_says_is_echoed_only_as_short_ascii(ring: KeyRing) -> None:
    access = PlaybackAccess(ring)
    claims = {"sub": "sig", "aud": "v", "exp": int(time.time()) + 600}
    header: dict[str, object] = {"alg": "R€\r\nX-Evil: 1" * 20, "kid": "k1"}
    evil = f"{b64(header)}.{b64(claims)}.c2ln"
    reason = refused(await access.check("sig", evil, audience="v", viewer=V))
    assert reason.isascii() and "\r" not in reason and "\n" not in reason and len(reason) < 120
    # A kid golive could never have made is refused without asking the store.
    odd_header: dict[str, object] = {"alg": "ES256", "kid": "k1/../x" * 10}
    odd = f"{b64(odd_header)}.{b64(claims)}.c2ln"
    assert "unknown" in refused(await access.check("sig", odd, audience="v", viewer=V))
    assert ring.key_reads == 0


SESSION_KEY = session_key_from(b"the secret a cluster's nodes share")


async def test_a_session_token_stands_for_its_jwt_on_every_node_with_the_secret(
        ring: KeyRing) -> None:
    here = PlaybackAccess(ring, session_key=SESSION_KEY)
    jwt_token = ring.token("sig", "k1", expires_in=600)
    assert isinstance(await here.check("sig", jwt_token, audience="v", viewer=V), Grant)
    session = here.session_token("sig", jwt_token)
    assert session.startswith("gs1.k1.") and len(session) < 60 < len(jwt_token)
    assert here.session_token("sig", jwt_token) == session  # one per JWT
    assert here.session_token("sig", session) == session  # and never one of a session's
    # This node knows it; another node of the cluster verifies it without the JWT.
    grant = await here.check("sig", session, audience="v", viewer=V)
    assert isinstance(grant, Grant) and grant.claims is not None and grant.claims["sub"] == "sig"
    other = PlaybackAccess(ring, session_key=SESSION_KEY)
    grant = await other.check("sig", session, audience="v", viewer=V)
    assert isinstance(grant, Grant)
    assert grant.expires_at == int(jwt.decode(jwt_token, options={"verify_signature": False})["exp"])
    assert other.signature_checks == 0 and other.session_checks == 1
    assert isinstance(await other.check("sig", session, audience="v", viewer=V), Grant)
    assert other.session_checks == 1  # then cached like a JWT
    # It grants the JWT's playback and nothing else.
    ring.add_playback("sig2", signed=True)
    third = PlaybackAccess(ring, session_key=SESSION_KEY)  # its MAC names the playback id
    assert "does not verify" in refused(await third.check("sig2", session, audience="v", viewer=V))
    assert "another playback id" in refused(await other.check("sig2", session, audience="v",
                                                              viewer=V))
    assert "not for thumbnail" in refused(await other.check("sig", session, audience="t", viewer=V))
    assert "not for chat" in refused(await other.check("sig", session, audience="c", viewer=V))


async def test_session_tokens_refused_when_forged_foreign_expired_or_their_key_is_gone(
        ring: KeyRing) -> None:
    now = [time.time()]
    here = PlaybackAccess(ring, session_key=SESSION_KEY, clock=lambda: now[0], key_ttl=0.0)
    jwt_token = ring.token("sig", "k1", expires_in=30)
    assert isinstance(await here.check("sig", jwt_token, audience="v", viewer=V), Grant)
    session = here.session_token("sig", jwt_token)
    prefix, key_id, expires, mac = session.split(".")

    def fresh() -> PlaybackAccess:
        return PlaybackAccess(ring, session_key=SESSION_KEY, clock=lambda: now[0], key_ttl=0.0)

    async def verdict(token: str) -> Grant | Refusal:
        return await fresh().check("sig", token, audience="v", viewer=V)

    later = f"{prefix}.{key_id}.{int(expires) + 3600}.{mac}"  # a longer life, same MAC
    assert "does not verify" in refused(await verdict(later))
    flipped = f"{prefix}.{key_id}.{expires}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    assert "does not verify" in refused(await verdict(flipped))
    for malformed in ("gs1.", "gs1.k1.12.short", f"gs1.k/1.{expires}.{mac}", session + "x"):
        assert "malformed" in refused(await verdict(malformed))
    # Another cluster's secret, or a node without session tokens, does not take it.
    stranger = PlaybackAccess(ring, session_key=session_key_from(b"another secret"))
    assert "does not verify" in refused(await stranger.check("sig", session, audience="v", viewer=V))
    plain = PlaybackAccess(ring)
    assert "does not accept" in refused(await plain.check("sig", session, audience="v", viewer=V))
    # It ends when the JWT would have: at its exp, and with its signing key.
    assert isinstance(await verdict(session), Grant)
    now[0] += 31
    assert "expired" in refused(await here.check("sig", session, audience="v", viewer=V))
    assert "expired" in refused(await verdict(session))
    now[0] -= 31
    del ring.keys["k1"]
    assert "no longer exists" in refused(await here.check("sig", session, audience="v", viewer=V))


async def test_the_jwt_itself_is_kept_where_no_session_token_may_stand_for_it(
        ring: KeyRing) -> None:
    jwt_token = ring.token("sig", "k1")
    plain = PlaybackAccess(ring)  # no session key
    assert isinstance(await plain.check("sig", jwt_token, audience="v", viewer=V), Grant)
    assert plain.session_token("sig", jwt_token) == jwt_token
    access = PlaybackAccess(ring, session_key=SESSION_KEY)
    assert access.session_token("sig", jwt_token) == jwt_token  # not verified here (yet)
    assert isinstance(await access.check("pub", "anything", audience="v", viewer=V), Grant)
    assert access.session_token("pub", "anything") == "anything"  # a public id: as given
    chat = ring.token("sig", "k1", audience="c")
    assert isinstance(await access.check("sig", chat, audience="c", viewer=V), Grant)
    assert access.session_token("sig", chat) == chat  # not a playback token
