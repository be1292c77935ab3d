"""Generating and hashing stream keys, API tokens and ids (core).

Stream keys and API tokens are high-entropy random strings, so a fast keyed hash
(HMAC-SHA256 with a fixed, public domain-separation key) is enough to make a
stolen database useless while keeping the lookup an indexed equality match. Slow
password hashes (argon2) are for low-entropy human secrets only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_KEY_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def random_id(prefix: str, nbytes: int = 12) -> str:
    """A URL-safe opaque identifier like `ls_3fJ...`."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes).replace('-', 'x').replace('_', 'y')}"


def new_stream_key() -> str:
    """A 32-character key safe to paste into OBS (no look-alike characters, no symbols)."""
    return "sk_" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


def new_playback_id() -> str:
    """A playback id: public, appears in URLs, 24 alphanumeric characters."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(24))


def new_api_token() -> str:
    return "glt_" + secrets.token_urlsafe(32)


def hash_secret(secret: str, purpose: str) -> str:
    """Hex digest of a high-entropy secret; `purpose` keeps key and token hashes apart."""
    return hmac.new(
        f"golive/{purpose}".encode(), secret.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()


def hash_stream_key(key: str) -> str:
    return hash_secret(key, "stream-key")


def hash_api_token(token: str) -> str:
    return hash_secret(token, "api-token")
