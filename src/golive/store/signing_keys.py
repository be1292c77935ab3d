"""Signing keys of signed playback, playback restrictions and access hooks (control plane).

A key pair is made here, the public half stored and the private half returned once:
golive can then verify playback tokens but never mint them, so a leaked database
leaks no way to watch. Several keys may be live at once, for rotation; deleting one
ends every token it signed. Key generation (RSA especially) takes tens of
milliseconds, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import delete, select

from golive.core import random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import SIGNING_ALGORITHMS, LiveStream, PlaybackId, SigningKey
from golive.store.records import SigningKeyRecord
from golive.store.validation import check_choice

RSA_BITS = 2048
MAX_REFERRERS = 50
MAX_REFERRER_LENGTH = 253  # a DNS name
MAX_HOOK_URL_LENGTH = 2000


def _record(row: SigningKey) -> SigningKeyRecord:
    return SigningKeyRecord(id=row.id, algorithm=row.algorithm, public_key=row.public_key,
                            created_at=row.created_at)


def generate_key_pair(algorithm: str) -> tuple[str, str]:
    """A new key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    check_choice("algorithm", algorithm, SIGNING_ALGORITHMS)
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode()
    return private_pem, public_pem


def check_referrers(referrers: Sequence[str]) -> tuple[str, ...]:
    """Host names (optionally `*.` wildcards), lower-cased; a ValueError says what is wrong."""
    if len(referrers) > MAX_REFERRERS:
        raise ValueError(f"allowed_referrers takes at most {MAX_REFERRERS} hosts")
    hosts = []
    for value in referrers:
        host = value.strip().lower()
        bare = host[2:] if host.startswith("*.") else host
        if (not bare or len(host) > MAX_REFERRER_LENGTH
                or not all(label and label.replace("-", "").isalnum() and label.isascii()
                           for label in bare.split("."))):
            raise ValueError(
                f"allowed_referrers: {value!r} is not a host name (like example.com or "
                "*.example.com)")
        hosts.append(host)
    return tuple(dict.fromkeys(hosts))


class SigningKeyRepository(Tables):
    """Create, list, find and delete signing keys; set playback restrictions and access hooks."""

    async def create_signing_key(self, algorithm: str = "RS256") -> tuple[SigningKeyRecord, str]:
        """A new key; returns its record and the private key PEM (returned only here)."""
        check_choice("algorithm", algorithm, SIGNING_ALGORITHMS)
        private_pem, public_pem = await asyncio.to_thread(generate_key_pair, algorithm)
        row = SigningKey(id=random_id("key"), algorithm=algorithm, public_key=public_pem,
                         created_at=utcnow())
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            record = _record(row)
        return record, private_pem

    async def list_signing_keys(self) -> list[SigningKeyRecord]:
        async with self._read() as session:
            rows = (await session.scalars(
                select(SigningKey).order_by(SigningKey.created_at, SigningKey.id))).all()
            return [_record(row) for row in rows]

    async def get_signing_key(self, key_id: str) -> SigningKeyRecord | None:
        async with self._read() as session:
            row = await session.get(SigningKey, key_id)
            return None if row is None else _record(row)

    async def delete_signing_key(self, key_id: str) -> bool:
        """Delete a key: every token it signed stops working. True if it existed."""
        async with self._write.begin() as session:
            result = await session.execute(delete(SigningKey).where(SigningKey.id == key_id))
            return rowcount(result) > 0

    async def set_referrer_restriction(
        self, playback_id: str, allowed_referrers: Sequence[str] | None,
        allow_empty_referrer: bool,
    ) -> bool:
        """Which pages may play a playback id (None: any); False if there is no such id."""
        hosts = None if allowed_referrers is None else list(check_referrers(allowed_referrers))
        async with self._write.begin() as session:
            row = await session.get(PlaybackId, playback_id)
            if row is None:
                return False
            row.allowed_referrers = hosts
            row.allow_empty_referrer = allow_empty_referrer
            return True

    async def set_access_hook(self, stream_id: str, url: str | None) -> bool:
        """A stream's own access hook (None: the node's); False if there is no such stream."""
        if url is not None:
            check_hook_url(url)
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return False
            row.access_hook_url = url
            row.updated_at = utcnow()
            return True


def check_hook_url(url: str) -> str:
    if len(url) > MAX_HOOK_URL_LENGTH or not url.startswith(("http://", "https://")) \
            or any(c.isspace() for c in url):
        raise ValueError(f"access_hook_url must be an http(s) URL of at most "
                         f"{MAX_HOOK_URL_LENGTH} characters")
    return url
