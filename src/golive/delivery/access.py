"""Who may play a playback id: signed playback tokens and referrer restrictions (delivery).

A signed playback id is usable only with a JWT (`?token=`) that names it (`sub`), the
surface it is for (`aud`: `v` playback, `t` thumbnail, `c` chat), expires (`exp`), may
start later (`nbf`), and is signed by one of the stream owner's signing keys (`kid`).
Each key has one algorithm, and only that one is accepted for its tokens: `alg=none`,
an HS256 token "signed" with the public key, or an RS256 token under an ES256 key are
refused before any signature is checked. Verification is PyJWT's (over `cryptography`).

The hot path is a dictionary lookup: verified tokens are kept (a bounded LRU) until they
expire, keys and playback rules for a few seconds, so a part request costs no signature
check and no database read after a viewer's first. A deleted key stops its tokens within
`key_ttl`; a playback id turned from public to signed within `rule_ttl`.

Session tokens: a JWT is a few hundred characters (ES256 ~250, RS256 ~600), and a signed
viewer's playlists carry a token into the URIs the player then asks for. With a
`session_key` (derived from the secret a cluster's nodes share), the origin carries a
short token derived from the verified JWT instead (`session_token`): `gs1.KID.EXP.MAC`,
~60 characters, MAC = HMAC-SHA256(session_key, "v|PID|KID|EXP") cut to 128 bits. It
grants what the JWT granted for playback (`aud` v, its playback id, until its `exp`) and
nothing more, any node of the cluster verifies it without the JWT, and it ends with its
signing key like the JWT does. The origin puts it in a path segment of the media
playlists' URLs, so every signed viewer shares the public viewers' playlist answers
(`golive.delivery.origin`). A stream with an access hook keeps the JWT in its URIs: the
hook is asked once per session, and its token claims are the JWT's.

What a refusal says is the same whether or not the stream is live: the check runs before
the origin looks for a presentation, so a signed playback id's liveness does not leak.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from golive.delivery.access_hook import AccessHook, AccessQuestion

__all__ = [
    "AccessDirectory",
    "Audience",
    "Grant",
    "PlaybackAccess",
    "PlaybackRule",
    "Refusal",
    "VerificationKey",
    "Viewer",
    "mint_playback_token",
    "referrer_allowed",
    "session_key_from",
]

log = logging.getLogger(__name__)

Audience = Literal["v", "t", "c"]
AUDIENCE_NAMES: Mapping[str, str] = {"v": "playback", "t": "thumbnail", "c": "chat"}
ALGORITHMS = ("RS256", "ES256")
MAX_TOKEN_LENGTH = 4096
RULE_TTL = 2.0
KEY_TTL = 10.0
REFRESH_AHEAD = 0.75  # a rule or key read after this share of its TTL is reloaded early
MAX_TOKENS = 100_000
MAX_RULES = 10_000
MAX_KEYS = 1_000
_KEY_ID = re.compile(r"[A-Za-z0-9_]{1,40}")
# A session token (see the module docstring): KID, EXP (Unix seconds), MAC (22 base64url).
SESSION_PREFIX = "gs1."
_SESSION = re.compile(
    rf"{re.escape(SESSION_PREFIX)}([A-Za-z0-9_]{{1,40}})\.([0-9]{{1,12}})\.([A-Za-z0-9_-]{{22}})")
_SESSION_MAC_BYTES = 16


@dataclass(frozen=True, slots=True)
class PlaybackRule:
    """What the gate needs to know of a playback id."""

    playback_id: str
    stream_id: str
    signed: bool
    allowed_referrers: tuple[str, ...] | None = None  # None: any page
    allow_empty_referrer: bool = True
    access_hook_url: str | None = None  # the stream's own hook (None: the node's, if any)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, as an access hook is told: how, from where, with which browser."""

    protocol: str  # hls, whep, page, chat
    remote_address: str
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A signing key's public half, as stored."""

    id: str
    algorithm: str  # "RS256" | "ES256"
    public_key_pem: str


class AccessDirectory(Protocol):
    """Where the gate reads playback rules and keys (the store, through the composition root)."""

    async def playback_rule(self, playback_id: str) -> PlaybackRule | None: ...

    async def verification_key(self, key_id: str) -> VerificationKey | None: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Not allowed: the HTTP status to answer (403, or 404 for an unknown playback id) and why."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Grant:
    """Allowed; `claims` are the verified token's (None for a public playback id)."""

    rule: PlaybackRule
    claims: Mapping[str, Any] | None
    expires_at: float | None  # the token's `exp` (Unix time); None without a token


@dataclass(frozen=True, slots=True)
class _Verified:
    key_id: str
    subject: str
    audiences: frozenset[str]
    expires_at: float
    not_before: float | None
    claims: Mapping[str, Any]


_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class _LoadedKey:
    algorithm: str
    key: _PublicKey


_MISS: Any = object()


class _TtlLru:
    """A bounded map of values loaded on demand, each trusted for `ttl` seconds.

    Concurrent misses on one key share one load, so a crowd arriving as an entry expires
    costs the database one query, not one per request. An entry read in the last quarter
    of its time by `peek(key, refresh=True)` is loaded again in the background while it
    is still served: under steady use it never expires, and the synchronous fast path
    never meets the miss that would send every request of a burst (all those the loop
    reads before the load's task runs, ~1,000 at 2,000 LL-HLS viewers) down the slow
    path together. A value is still never served past its `ttl`.
    """

    def __init__(self, ttl: float, size: int, clock: Callable[[], float],
                 load: Callable[[str], Awaitable[Any]]) -> None:
        """`load(key)`: the value for `key` (a database read)."""
        self._ttl = ttl
        self._refresh_at = ttl * REFRESH_AHEAD
        self._load_value = load
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: set[asyncio.Task[Any]] = set()

    def peek(self, key: str, refresh: bool = False) -> Any:
        """The fresh value for `key`, or `_MISS` (no load: for the synchronous fast path).
        With `refresh`, a value near the end of its time is loaded again in the background."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISS
        age = self._clock() - entry[0]
        if age >= self._ttl:
            return _MISS
        if refresh and age >= self._refresh_at and key not in self._loading:
            self._refresh(key)
        return entry[1]

    def _refresh(self, key: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to load in: it expires and is loaded as a miss
            return
        task = loop.create_task(self._load(key, self._begin(key)))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[Any]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The value it had expires as it would have; the next miss loads it again.
            log.warning("background reload failed error=%r", exc)

    def recheck_at(self, key: str) -> float:
        """When something made from `key`'s value should read it again (`peek`), on this
        cache's clock: where its background reload is due (-inf: not kept)."""
        entry = self._entries.get(key)
        return entry[0] + self._refresh_at if entry is not None else -math.inf

    async def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, self._begin(key))

    def _begin(self, key: str) -> asyncio.Future[Any]:
        """The load of `key` that concurrent misses share, registered at once."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return future

    async def _load(self, key: str, future: asyncio.Future[Any]) -> Any:
        now = self._clock()  # trusted from when it was asked for, not from the answer
        try:
            value = await self._load_value(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._loading[key]
        future.set_result(value)
        self._entries.pop(key, None)
        self._entries[key] = (now, value)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


def referrer_allowed(rule: PlaybackRule, referrer: str | None, own_host: str | None = None
                     ) -> bool:
    """Mux-style referrer restriction: the page's host must be listed (`*.` covers subdomains).

    golive's own pages (the watch and embed pages, whose player then asks for the media)
    count as allowed: `own_host` is the request's Host; the embed page itself is checked
    against the page that embeds it.
    """
    if rule.allowed_referrers is None:
        return True
    if not referrer:
        return rule.allow_empty_referrer
    try:
        parts = urlsplit(referrer)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if own_host and parts.netloc.lower() == own_host.lower():
        return True
    for allowed in rule.allowed_referrers:
        if allowed.startswith("*."):
            if host.endswith(allowed[1:]) or host == allowed[2:]:
                return True
        elif host == allowed:
            return True
    return False


def session_key_from(secret: bytes) -> bytes:
    """The key session tokens are signed with, derived from the secret the nodes share (so
    that it is of no use for anything else the same secret signs)."""
    return hmac.new(secret, b"golive playback session tokens v1", hashlib.sha256).digest()


class PlaybackAccess:
    """Decides whether a request may use a playback id; see the module docstring."""

    def __init__(
        self,
        directory: AccessDirectory,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rule_ttl: float = RULE_TTL,
        key_ttl: float = KEY_TTL,
        max_tokens: int = MAX_TOKENS,
        hook: AccessHook | None = None,
        default_hook_url: str | None = None,
        session_key: bytes | None = None,
    ) -> None:
        self._directory = directory
        self._session_key = session_key
        # Each verified JWT's session token (the JWT's own LRU bound).
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._hook = hook
        self._default_hook_url = default_hook_url
        self._clock = clock
        self._monotonic = monotonic  # the TTLs' clock (`clock` is the tokens' wall clock)
        self._rules = _TtlLru(rule_ttl, MAX_RULES, monotonic, directory.playback_rule)
        self._keys = _TtlLru(key_ttl, MAX_KEYS, monotonic, self._load_key)
        self._tokens: OrderedDict[str, _Verified] = OrderedDict()
        self._max_tokens = max_tokens
        # (playback id, token, audience) -> (recheck at (monotonic), the token's exp, the
        # grant): `_cached_grant`'s answer for a signed viewer's every request, until the
        # rule or key it was made from is due a reload, while the token is valid.
        self._grants: dict[tuple[str, str, Audience], tuple[float, float, Grant]] = {}
        # A public playback id's grant, the same for every request while its rule is.
        self._public_grants: dict[str, Grant] = {}
        self.signature_checks = 0  # how many tokens were verified cryptographically
        self.session_checks = 0  # how many session tokens made elsewhere were verified

    async def rule(self, playback_id: str) -> PlaybackRule | None:
        found: PlaybackRule | None = await self._rules.get(playback_id)
        return found

    async def check(
        self,
        playback_id: str,
        token: str | None,
        *,
        audience: Audience,
        viewer: Viewer | Callable[[], Viewer],
        referrer: str | None = None,
        own_host: str | None = None,
    ) -> Grant | Refusal:
        """May this request use `playback_id`? `referrer` is its Referer, `own_host` its Host.

        Tokens and restrictions first; then, for a request they allow, the access hook
        (the stream's, else the node's), once per viewer session. `viewer` may be given as
        a function that makes it: only an access hook needs it, and the origin, which
        checks every part request, then builds none.
        """
        verdict: Grant | Refusal | None = self._cached_grant(
            playback_id, token, audience, referrer, own_host)
        if verdict is None:
            verdict = await self._check(playback_id, token, audience=audience,
                                        referrer=referrer, own_host=own_host)
        if isinstance(verdict, Refusal) or self._hook is None:
            return verdict
        url = verdict.rule.access_hook_url or self._default_hook_url
        if not url:
            return verdict
        if callable(viewer):
            viewer = viewer()
        question = AccessQuestion(
            "chat" if audience == "c" else "play", viewer.protocol, verdict.rule.stream_id,
            playback_id, viewer.remote_address, viewer.user_agent, referrer or "",
            verdict.claims)
        session = token or f"{viewer.remote_address}|{viewer.user_agent}"
        decision = await self._hook.ask(url, question, session)
        if not decision.allowed:
            return Refusal(403, f"access hook: {decision.reason or 'denied'}")
        return verdict

    def check_now(self, playback_id: str, token: str | None, *, audience: Audience,
                  referrer: str | None, own_host: str | None) -> Grant | None:
        """`check`'s grant when it needs no await: the rule, key and token cached, the
        request allowed, and no access hook to ask. None: call `check` (which also says
        why when it refuses)."""
        verdict = self._cached_grant(playback_id, token, audience, referrer, own_host)
        if verdict is None:
            return None
        if self._hook is not None and (verdict.rule.access_hook_url or self._default_hook_url):
            return None
        return verdict

    def session_token(self, playback_id: str, token: str) -> str:
        """What a playlist of `playback_id` writes into its URIs for a viewer who sent
        `token`: the short session token standing for a verified JWT (see the module
        docstring), else `token` itself (no session key, a public playback id, a token
        not verified here for this playback id's playback, a stream with an access hook,
        or a session token already). Call it for a request `check` has allowed."""
        if self._session_key is None or token.startswith(SESSION_PREFIX):
            return token
        rule = self._rules.peek(playback_id)
        if (rule is _MISS or rule is None or not rule.signed
                or (self._hook is not None and (rule.access_hook_url or self._default_hook_url))):
            return token
        session = self._sessions.get(token)
        if session is not None:
            self._sessions.move_to_end(token)
            return session
        verified = self._tokens.get(token)
        if verified is None or verified.subject != playback_id or "v" not in verified.audiences:
            return token
        expires = int(verified.expires_at)
        session = (f"{SESSION_PREFIX}{verified.key_id}.{expires}."
                   f"{self._session_mac(playback_id, verified.key_id, expires)}")
        self._remember(session, _session_verified(verified.key_id, playback_id, expires,
                                                  verified.claims))
        self._sessions[token] = session
        while len(self._sessions) > self._max_tokens:
            self._sessions.popitem(last=False)
        return session

    def _session_mac(self, playback_id: str, key_id: str, expires: int) -> str:
        assert self._session_key is not None
        mac = hmac.new(self._session_key, f"v|{playback_id}|{key_id}|{expires}".encode(),
                       hashlib.sha256).digest()[:_SESSION_MAC_BYTES]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _verified_session(self, token: str, playback_id: str) -> _Verified | Refusal:
        """A session token made by this node or another of its cluster (same secret)."""
        match = _SESSION.fullmatch(token)
        if match is None:
            return Refusal(403, "the playback session token is malformed")
        if self._session_key is None:
            return Refusal(403, "this node does not accept playback session tokens")
        key_id, expires, mac = match[1], int(match[2]), match[3]
        self.session_checks += 1
        if not hmac.compare_digest(mac, self._session_mac(playback_id, key_id, expires)):
            return Refusal(403, "the playback session token does not verify (is it for "
                                "another playback id?)")
        verified = _session_verified(key_id, playback_id, expires,
                                     {"sub": playback_id, "aud": "v", "exp": expires})
        self._remember(token, verified)
        return verified

    def _remember(self, token: str, verified: _Verified) -> None:
        self._tokens[token] = verified
        while len(self._tokens) > self._max_tokens:
            self._tokens.popitem(last=False)

    def _cached_grant(self, playback_id: str, token: str | None, audience: Audience,
                      referrer: str | None, own_host: str | None) -> Grant | None:
        """The common case (everything cached, everything allowed) without any await; None
        sends the request down the full path, which also says why when it refuses.

        A signed viewer's grant is kept and given again while everything it was made
        from stays as it was: the rule and the key fresh (until their background reload
        is due, so that the reads here start it) and the token unexpired. (Not for a rule
        restricting referrers, which each request's own Referer decides.)"""
        if token:
            kept = self._grants.get((playback_id, token, audience))
            if (kept is not None and self._monotonic() < kept[0]
                    and self._clock() < kept[1]):
                return kept[2]
        rule = self._rules.peek(playback_id, True)
        if rule is _MISS or rule is None:
            return None
        if rule.allowed_referrers is not None and not referrer_allowed(rule, referrer, own_host):
            return None
        if not rule.signed:
            public = self._public_grants.get(playback_id)
            if public is None or public.rule is not rule:
                if len(self._public_grants) >= MAX_RULES:
                    self._public_grants.clear()
                public = self._public_grants[playback_id] = Grant(rule, None, None)
            return public
        verified = self._tokens.get(token) if token else None
        if verified is None:
            return None
        now = self._clock()
        if (now >= verified.expires_at
                or (verified.not_before is not None and now < verified.not_before)
                or verified.subject != playback_id or audience not in verified.audiences):
            return None
        key = self._keys.peek(verified.key_id, True)
        if key is _MISS or key is None:
            return None
        self._tokens.move_to_end(token)  # type: ignore[arg-type]  # token is set here
        grant = Grant(rule, verified.claims, verified.expires_at)
        if rule.allowed_referrers is None:
            if len(self._grants) >= self._max_tokens:
                self._grants.clear()
            fresh = min(self._rules.recheck_at(playback_id),
                        self._keys.recheck_at(verified.key_id))
            self._grants[(playback_id, token, audience)] = (  # type: ignore[index]
                fresh, verified.expires_at, grant)
        return grant

    async def _check(
        self,
        playback_id: str,
        token: str | None,
        *,
        audience: Audience,
        referrer: str | None,
        own_host: str | None,
    ) -> Grant | Refusal:
        rule = await self.rule(playback_id)
        if rule is None:
            return Refusal(404, f"no such playback id {playback_id!r}")
        if not referrer_allowed(rule, referrer, own_host):
            return Refusal(403, "this playback id may not be played from this page (referrer "
                                "not allowed)" if referrer else
                                "this playback id needs a Referer from an allowed page")
        if not rule.signed:
            return Grant(rule, None, None)
        if not token:
            return Refusal(403, "this playback id is signed: a playback token is required "
                                "(?token=JWT)")
        verified = await self._verified(token, playback_id)
        if isinstance(verified, Refusal):
            return verified
        now = self._clock()
        if now >= verified.expires_at:
            return Refusal(403, "the playback token has expired")
        if verified.not_before is not None and now < verified.not_before:
            return Refusal(403, "the playback token is not valid yet (nbf)")
        if verified.subject != playback_id:
            return Refusal(403, "the playback token is for another playback id")
        if audience not in verified.audiences:
            return Refusal(403, f"the playback token is not for {AUDIENCE_NAMES[audience]} "
                                f"(aud must be {audience!r})")
        # A deleted key ends its tokens, cached or not (the key cache is the only wait).
        if await self._key(verified.key_id) is None:
            return Refusal(403, "the playback token's signing key no longer exists")
        return Grant(rule, verified.claims, verified.expires_at)

    async def _key(self, key_id: str) -> _LoadedKey | None:
        found: _LoadedKey | None = await self._keys.get(key_id)
        return found

    async def _load_key(self, key_id: str) -> _LoadedKey | None:
        stored = await self._directory.verification_key(key_id)
        if stored is None or stored.algorithm not in ALGORITHMS:
            return None
        public = load_pem_public_key(stored.public_key_pem.encode())
        wanted = rsa.RSAPublicKey if stored.algorithm == "RS256" else ec.EllipticCurvePublicKey
        if not isinstance(public, wanted):
            return None
        return _LoadedKey(stored.algorithm, public)

    async def _verified(self, token: str, playback_id: str) -> _Verified | Refusal:
        cached = self._tokens.get(token)
        if cached is not None:
            self._tokens.move_to_end(token)
            return cached
        if len(token) > MAX_TOKEN_LENGTH:
            return Refusal(403, f"the playback token is longer than {MAX_TOKEN_LENGTH} characters")
        if token.startswith(SESSION_PREFIX):
            return self._verified_session(token, playback_id)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return Refusal(403, "the playback token is not a JWT")
        algorithm = header.get("alg")
        key_id = header.get("kid")
        if not isinstance(key_id, str) or not key_id:
            return Refusal(403, "the playback token has no kid (signing key id) in its header")
        if algorithm not in ALGORITHMS:
            return Refusal(403, f"the playback token's algorithm {_shown(algorithm)} is not "
                                f"accepted (only {' or '.join(ALGORITHMS)})")
        if not _KEY_ID.fullmatch(key_id):
            # Not one golive makes: refused without a database lookup.
            return Refusal(403, "the playback token's signing key (kid) is unknown")
        key = await self._key(key_id)
        if key is None:
            return Refusal(403, "the playback token's signing key (kid) is unknown")
        if algorithm != key.algorithm:
            return Refusal(403, f"the playback token is signed with {algorithm}, but its key "
                                f"is {key.algorithm}")
        self.signature_checks += 1
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[key.algorithm],
                # exp and nbf are checked against our clock, on every use (tokens are cached)
                options={"require": ["exp", "sub", "aud"], "verify_exp": False,
                         "verify_nbf": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.MissingRequiredClaimError as exc:
            return Refusal(403, f"the playback token has no {exc.claim!r} claim")
        except jwt.InvalidSignatureError:
            return Refusal(403, "the playback token's signature does not verify")
        except jwt.InvalidTokenError as exc:
            return Refusal(403, f"the playback token is invalid ({exc})")
        verified = _parse_claims(key_id, claims)
        if isinstance(verified, Refusal):
            return verified
        self._remember(token, verified)
        return verified


_PLAYBACK_ONLY = frozenset({"v"})


def _session_verified(key_id: str, playback_id: str, expires: int,
                      claims: Mapping[str, Any]) -> _Verified:
    """What a session token stands for: playback of one playback id until `expires`."""
    return _Verified(key_id=key_id, subject=playback_id, audiences=_PLAYBACK_ONLY,
                     expires_at=float(expires), not_before=None, claims=claims)


def _shown(value: object) -> str:
    """A value from a token, safe to echo in a reason (and an HTTP header): short ASCII."""
    return ascii(value)[:24]


def _parse_claims(key_id: str, claims: dict[str, Any]) -> _Verified | Refusal:
    subject = claims.get("sub")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if not isinstance(subject, str):
        return Refusal(403, "the playback token's sub must be a playback id")
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        return Refusal(403, "the playback token's aud must be 'v', 't' or 'c'")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return Refusal(403, "the playback token's exp must be a number (Unix time)")
    if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, int | float)):
        return Refusal(403, "the playback token's nbf must be a number (Unix time)")
    return _Verified(key_id=key_id, subject=subject, audiences=frozenset(audiences),
                     expires_at=float(exp), not_before=None if nbf is None else float(nbf),
                     claims=claims)


def mint_playback_token(
    private_key_pem: str,
    *,
    key_id: str,
    playback_id: str,
    audience: Audience,
    expires_in: float,
    not_before: float | None = None,
    now: float | None = None,
) -> str:
    """A playback token, as `golive tokens sign` and an application backend mint one.

    The algorithm follows the key: RS256 for an RSA key, ES256 for a P-256 one.
    """
    private = load_pem_private_key(private_key_pem.encode(), password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        algorithm = "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        algorithm = "ES256"
    else:
        raise ValueError("the private key must be RSA (RS256) or EC P-256 (ES256)")
    if expires_in <= 0:
        raise ValueError("expires_in must be a positive number of seconds")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": playback_id, "aud": audience,
                              "exp": int(issued + expires_in)}
    if not_before is not None:
        claims["nbf"] = int(not_before)
    return jwt.encode(claims, private, algorithm=algorithm, headers={"kid": key_id})
