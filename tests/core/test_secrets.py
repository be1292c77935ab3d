"""Stream keys, tokens and ids: shape, entropy and hashing."""

from __future__ import annotations

from golive.core import secrets


def test_stream_keys_are_unique_and_obs_friendly() -> None:
    keys = {secrets.new_stream_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in list(keys)[:50]:
        assert key.startswith("sk_") and len(key) == 35
        assert key[3:].isalnum()
        assert not set(key[3:]) & set("0O1lI")


def test_hashes_are_stable_and_separated_by_purpose() -> None:
    key = secrets.new_stream_key()
    assert secrets.hash_stream_key(key) == secrets.hash_stream_key(key)
    assert secrets.hash_stream_key(key) != secrets.hash_api_token(key)
    assert key not in secrets.hash_stream_key(key)
    assert len(secrets.hash_stream_key(key)) == 64


def test_ids() -> None:
    assert secrets.random_id("ls").startswith("ls_")
    assert "-" not in secrets.random_id("ls", 32)
    assert len(secrets.new_playback_id()) == 24
