"""Identity cookies, chat tokens and display names."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.chat.identity import (
    ChatSigner,
    ChatUser,
    InvalidIdentity,
    load_chat_secret,
    validate_display_name,
)

SIGNER = ChatSigner(b"0123456789abcdef0123456789abcdef")


def test_identity_round_trip_and_tampering() -> None:
    user = ChatUser(id="anon_1234", name="Zoë 🎉")
    value = SIGNER.sign_identity(user)
    assert SIGNER.read_identity(value) == user
    payload, mac = value.split(".")
    with pytest.raises(InvalidIdentity):
        SIGNER.read_identity(payload + "x." + mac)
    with pytest.raises(InvalidIdentity):
        ChatSigner(b"another secret, sixteen+").read_identity(value)


@given(st.text(max_size=200))
def test_arbitrary_cookies_only_raise_invalid_identity(value: str) -> None:
    try:
        SIGNER.read_identity(value)
    except InvalidIdentity:
        pass


def test_token_round_trip() -> None:
    token = SIGNER.mint_token(user_id="u1", display_name="Ann", capabilities=["moderate", "send"],
                              ttl=60, now=time.time(), stream_id="ls_1")
    user = SIGNER.read_token(token)
    assert (user.id, user.name, user.signed_in, user.stream_id) == ("u1", "Ann", True, "ls_1")
    assert user.can_send and user.can_moderate


def test_tokens_expire_and_are_bound_to_the_secret() -> None:
    old = SIGNER.mint_token(user_id="u1", display_name="Ann", capabilities=["send"], ttl=1,
                            now=time.time() - 10)
    with pytest.raises(InvalidIdentity, match="expired"):
        SIGNER.read_token(old)
    forged = jwt.encode({"sub": "u1", "aud": "golive-chat", "exp": time.time() + 60},
                        "0123456789abcdef0123456789abcdef", algorithm="HS256")
    with pytest.raises(InvalidIdentity):
        SIGNER.read_token(forged)  # signed with the raw secret, not the token key
    # An identity cookie is not a token, and a token is not a cookie.
    with pytest.raises(InvalidIdentity):
        SIGNER.read_token(SIGNER.sign_identity(ChatUser(id="u1", name="Ann")))
    with pytest.raises(InvalidIdentity):
        SIGNER.read_identity(old)
    with pytest.raises(InvalidIdentity):
        SIGNER.mint_token(user_id="u1", display_name="Ann", capabilities=["fly"], ttl=60,
                          now=time.time())


def test_display_names() -> None:
    assert validate_display_name("  Ann  ") == "Ann"
    for bad in ["", " ", "x" * 33, "a\u0000b", "a\u202eb", None]:
        with pytest.raises(InvalidIdentity):
            validate_display_name(bad)


def test_secret_is_generated_once(tmp_path: Path) -> None:
    first = load_chat_secret(None, tmp_path)
    assert load_chat_secret(None, tmp_path) == first
    assert (tmp_path / "chat-secret").stat().st_mode & 0o777 == 0o600
    assert load_chat_secret("configured", tmp_path) == b"configured"
