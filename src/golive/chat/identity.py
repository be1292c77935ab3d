"""Who is chatting: display names, signed identity cookies and chat tokens (chat).

Anonymous viewers get a random user id plus the display name they picked, kept in
an HMAC-signed value (the `golive_chat` cookie, also handed to the client in an
`identity` frame). Apps with their own users mint chat tokens through the API: JWTs
(HS256) carrying the user id, display name, capabilities and expiry. Both are signed
with keys derived from one server secret, so neither can be used as the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

MAX_NAME_LENGTH = 32
MAX_USER_ID_LENGTH = 64
CAPABILITIES = ("send", "moderate")
TOKEN_AUDIENCE = "golive-chat"
COOKIE_NAME = "golive_chat"
# The studio mints its moderator tokens for user ids with this prefix
# (`golive.web.studio`): the streamer's own identity in chat.
STUDIO_USER_PREFIX = "studio_"
# Names the studio shows for the streamer; nobody else may chat under them.
RESERVED_NAMES = frozenset({"host"})
Role = Literal["streamer", "moderator", "viewer"]


class InvalidIdentity(ValueError):
    """A display name, cookie or chat token that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class ChatUser:
    """A chat participant. `signed_in` means the identity came from a chat token."""

    id: str
    name: str
    capabilities: frozenset[str] = frozenset({"send"})
    signed_in: bool = False
    stream_id: str | None = None  # a token limited to one stream's chat

    @property
    def can_send(self) -> bool:
        return "send" in self.capabilities

    @property
    def can_moderate(self) -> bool:
        return "moderate" in self.capabilities

    @property
    def role(self) -> Role:
        """What the chat shows next to the name (the `role` of a message's user)."""
        if self.signed_in and self.can_moderate:
            return "streamer" if self.id.startswith(STUDIO_USER_PREFIX) else "moderator"
        return "viewer"


def stored_role(user_id: str) -> Role:
    """The role of a message read back from the database, which keeps only the user id.

    The studio's user ids say who the streamer is; a moderator's messages from before
    a restart show as a viewer's.
    """
    return "streamer" if user_id.startswith(STUDIO_USER_PREFIX) else "viewer"


def name_key(name: str) -> str:
    """A display name as compared for reservation: "  HOST ", fullwidth "HOST" and "host" are one."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def validate_display_name(name: object) -> str:
    """A trimmed display name of 1 to 32 characters without control characters."""
    if not isinstance(name, str):
        raise InvalidIdentity("name must be a string")
    name = name.strip()
    if not name:
        raise InvalidIdentity("name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidIdentity(f"name must be at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in name):
        raise InvalidIdentity("name must not contain control or invisible characters")
    return name


def validate_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_USER_ID_LENGTH \
            or not user_id.isprintable() or user_id != user_id.strip():
        raise InvalidIdentity(
            f"user_id must be 1 to {MAX_USER_ID_LENGTH} printable characters"
        )
    return user_id


def new_anonymous_id() -> str:
    return "anon_" + secrets.token_hex(8)


def load_chat_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else the one in data_dir/chat-secret (created on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / "chat-secret"
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ChatSigner:
    """Signs and checks identity cookies and chat tokens with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the chat secret must be at least 16 bytes")
        self._cookie_key = hmac.new(secret, b"golive/chat-identity", hashlib.sha256).digest()
        self._token_key = hmac.new(secret, b"golive/chat-token", hashlib.sha256).digest()

    # Anonymous identity ------------------------------------------------------------------

    def sign_identity(self, user: ChatUser) -> str:
        payload = _b64(json.dumps({"u": user.id, "n": user.name}, separators=(",", ":"),
                                  ensure_ascii=False).encode())
        mac = hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def read_identity(self, value: str) -> ChatUser:
        try:
            payload, mac = value.split(".")
            expected = hmac.new(self._cookie_key, payload.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(mac), expected):
                raise InvalidIdentity("identity signature does not match")
            data = json.loads(_unb64(payload))
            return ChatUser(id=validate_user_id(data["u"]), name=validate_display_name(data["n"]))
        except InvalidIdentity:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidIdentity("malformed identity") from exc

    # Chat tokens -------------------------------------------------------------------------

    def mint_token(
        self, *, user_id: str, display_name: str, capabilities: Iterable[str], ttl: int,
        now: float, stream_id: str | None = None,
    ) -> str:
        caps = sorted(set(capabilities))
        unknown = [c for c in caps if c not in CAPABILITIES]
        if unknown:
            raise InvalidIdentity(f"unknown capabilities {unknown}; use {list(CAPABILITIES)}")
        claims: dict[str, Any] = {
            "sub": validate_user_id(user_id),
            "name": validate_display_name(display_name),
            "caps": caps,
            "aud": TOKEN_AUDIENCE,
            "iat": int(now),
            "exp": int(now) + int(ttl),
        }
        if stream_id is not None:
            claims["stream_id"] = stream_id
        return jwt.encode(claims, self._token_key, algorithm="HS256")

    def read_token(self, token: str, *, now: float | None = None) -> ChatUser:
        try:
            claims = jwt.decode(
                token, self._token_key, algorithms=["HS256"], audience=TOKEN_AUDIENCE,
                options={"require": ["sub", "exp", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidIdentity("chat token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidIdentity("invalid chat token") from exc
        if now is not None and claims["exp"] <= now:
            raise InvalidIdentity("chat token has expired")
        caps = claims.get("caps", [])
        stream_id = claims.get("stream_id")
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps) \
                or (stream_id is not None and not isinstance(stream_id, str)):
            raise InvalidIdentity("invalid chat token")
        return ChatUser(
            id=validate_user_id(claims["sub"]),
            name=validate_display_name(claims.get("name", claims["sub"])),
            capabilities=frozenset(c for c in caps if c in CAPABILITIES),
            signed_in=True,
            stream_id=stream_id,
        )
