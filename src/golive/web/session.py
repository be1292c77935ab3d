"""The studio's login sessions: signed, expiring session cookies and per-session CSRF tokens (web).

After a login the API token stays on the server, in `StudioSessions`; the browser only
holds a random session id in an HMAC-signed cookie that carries its own expiry. Every
state-changing request must also send the session's CSRF token (derived from the
session id with a separate key), which a page on another site cannot read. On one node
sessions live in memory: a restart or a logout ends them for good. In a cluster
(`redis_url`) they live in Redis (`SessionBook`), so any node honours them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from golive.core import RedisLink

log = logging.getLogger(__name__)

SESSION_COOKIE = "golive_studio"
SESSION_TTL = 12 * 3600
MAX_SESSIONS = 1000
MAX_COOKIE_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class StudioSession:
    """One signed-in browser: the API token it logged in with, kept server-side only."""

    id: str
    token: str
    name: str  # the API token's name, shown in the studio and used as the chat name
    expires_at: float


class SessionSigner:
    """Signs session cookies and derives CSRF tokens, each with its own key from one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the studio secret must be at least 16 bytes")
        self._cookie_key = hmac.new(secret, b"golive/studio-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"golive/studio-csrf", hashlib.sha256).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest())

    def sign(self, session_id: str, expires_at: float) -> str:
        """The cookie value: `SESSION_ID.EXPIRES.MAC`."""
        if not session_id or "." in session_id:
            raise ValueError("session id must be non-empty and contain no dots")
        payload = f"{session_id}.{int(expires_at)}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, value: str, now: float) -> str | None:
        """The session id of a genuine, unexpired cookie value; None for anything else."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        session_id, expires, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(f"{session_id}.{expires}").encode()):
            return None
        if int(expires) <= now:
            return None
        return session_id

    def csrf_token(self, session_id: str) -> str:
        return _b64(hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).digest())

    def check_csrf(self, session_id: str, token: str | None) -> bool:
        if not token or len(token) > 128:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session_id).encode())


class StudioSessions:
    """The signed-in sessions of this node, in memory, bounded (the oldest go first)."""

    def __init__(self, ttl: float = SESSION_TTL, size: int = MAX_SESSIONS) -> None:
        self.ttl = ttl
        self.size = size
        self._sessions: OrderedDict[str, StudioSession] = OrderedDict()

    def create(self, token: str, name: str, now: float) -> StudioSession:
        session = StudioSession(id=secrets.token_urlsafe(24), token=token, name=name,
                                expires_at=now + self.ttl)
        self._sessions[session.id] = session
        while len(self._sessions) > self.size:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str, now: float) -> StudioSession | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._sessions[session_id]
            return None
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


# KEYS[1]: the session's key, KEYS[2]: the index of sessions by expiry. ARGV: id, value,
# ttl in ms, expiry and now (Unix seconds), the most sessions kept. Expired entries leave
# the index; beyond the most, the sessions that expire first go (as on one node).
_CREATE = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if over > 0 then
  local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
  for i, old in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
    if i % 2 == 1 then redis.call('DEL', prefix .. old) end
  end
end
return 1
"""
MAX_PENDING_DROPS = 1000


class SessionBook:
    """Where the studio keeps its sessions: this node's memory, or Redis shared by the cluster.

    With a `RedisLink`, a session made on one node is valid on every node, and a logout
    or a revoked token ends it everywhere. Redis holds the API token only encrypted
    (AES-GCM, a key derived from the studio secret the nodes share, the session id as
    associated data), so reading Redis does not reveal tokens. While Redis is away the
    book fails closed: sessions stored there are not honoured, logins made meanwhile
    live on this node only, and logouts are kept (bounded) and applied in Redis when it
    answers again.
    """

    def __init__(self, local: StudioSessions, *, link: RedisLink | None = None,
                 secret: bytes | None = None) -> None:
        self.local = local
        self.ttl = local.ttl
        self._link = link
        self._pending_drops: OrderedDict[str, None] = OrderedDict()
        self._aead: AESGCM | None = None
        if link is not None:
            if secret is None or len(secret) < 16:
                raise ValueError("shared studio sessions need the studio secret")
            self._aead = AESGCM(hmac.new(secret, b"golive/studio-token", hashlib.sha256).digest())

    def _key(self, session_id: str) -> str:
        assert self._link is not None
        return f"{self._link.prefix}studio:session:{session_id}"

    def _index(self) -> str:
        assert self._link is not None
        return f"{self._link.prefix}studio:sessions"

    async def create(self, token: str, name: str, now: float) -> StudioSession:
        session = self.local.create(token, name, now)
        if self._link is None or self._aead is None:
            return session
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, token.encode(), session.id.encode())
        value = json.dumps({"name": name, "expires_at": session.expires_at,
                            "token": _b64(nonce + sealed)}, separators=(",", ":"))
        ttl_ms = max(1, int(self.ttl * 1000))
        stored = await self._link.eval(
            "storing a studio session", _CREATE, [self._key(session.id), self._index()],
            [session.id, value, ttl_ms, session.expires_at, now, self.local.size])
        if stored is not None:
            self.local.drop(session.id)  # it lives in Redis; this node keeps no copy
        return session

    async def get(self, session_id: str, now: float) -> StudioSession | None:
        if self._link is None:
            return self.local.get(session_id, now)
        await self._apply_drops()
        raw = await self._link.call("reading a studio session",
                                    lambda c: c.get(self._key(session_id)))
        if raw is not None:
            return self._open(session_id, raw, now)
        # Not in Redis, or Redis away: only a login this node took during an outage.
        return self.local.get(session_id, now)

    async def drop(self, session_id: str) -> None:
        self.local.drop(session_id)
        if self._link is None:
            return
        done = await self._link.call("ending a studio session",
                                     lambda c: c.delete(self._key(session_id)))
        if done is None:
            self._pending_drops[session_id] = None
            while len(self._pending_drops) > MAX_PENDING_DROPS:
                self._pending_drops.popitem(last=False)

    async def _apply_drops(self) -> None:
        if not self._pending_drops or self._link is None:
            return
        ids = list(self._pending_drops)
        done = await self._link.call("ending studio sessions",
                                     lambda c: c.delete(*[self._key(i) for i in ids]))
        if done is not None:
            for session_id in ids:
                self._pending_drops.pop(session_id, None)

    def _open(self, session_id: str, raw: object, now: float) -> StudioSession | None:
        assert self._aead is not None
        try:
            value = json.loads(raw if isinstance(raw, bytes | str) else b"")
            sealed = base64.urlsafe_b64decode(value["token"] + "=" * (-len(value["token"]) % 4))
            token = self._aead.decrypt(sealed[:12], sealed[12:], session_id.encode()).decode()
            session = StudioSession(id=session_id, token=token, name=str(value["name"]),
                                    expires_at=float(value["expires_at"]))
        except (ValueError, KeyError, TypeError, InvalidTag):
            log.warning("studio session in Redis could not be read (another secret?); ignored")
            return None
        return session if session.expires_at > now else None
