"""The studio's login sessions: signed, expiring session cookies and per-session CSRF tokens (web).

After a login the API token stays on the server, in `StudioSessions`; the browser only
holds a random session id in an HMAC-signed cookie that carries its own expiry. Every
state-changing request must also send the session's CSRF token (derived from the
session id with a separate key), which a page on another site cannot read. Sessions
live in memory: a restart or a logout ends them for good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

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
        self._size = size
        self._sessions: OrderedDict[str, StudioSession] = OrderedDict()

    def create(self, token: str, name: str, now: float) -> StudioSession:
        session = StudioSession(id=secrets.token_urlsafe(24), token=token, name=name,
                                expires_at=now + self.ttl)
        self._sessions[session.id] = session
        while len(self._sessions) > self._size:
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
