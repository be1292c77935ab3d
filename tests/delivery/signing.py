"""Signing keys and playback rules held in memory, for tests of the delivery stage alone.

`KeyRing` implements `golive.delivery.AccessDirectory` the way the composition root's
store adapter does, over real key pairs (golive's own generator) and real tokens
(`mint_playback_token`); the store side is tested against a real database elsewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from golive.delivery import Audience, PlaybackRule, VerificationKey, mint_playback_token
from golive.store import generate_key_pair


@dataclass
class KeyRing:
    rules: dict[str, PlaybackRule] = field(default_factory=dict)
    keys: dict[str, VerificationKey] = field(default_factory=dict)
    private: dict[str, str] = field(default_factory=dict)
    rule_reads: int = 0
    key_reads: int = 0

    def add_key(self, key_id: str, algorithm: str = "ES256") -> str:
        private_pem, public_pem = generate_key_pair(algorithm)
        self.keys[key_id] = VerificationKey(key_id, algorithm, public_pem)
        self.private[key_id] = private_pem
        return private_pem

    def add_playback(self, playback_id: str, *, signed: bool,
                     allowed_referrers: tuple[str, ...] | None = None,
                     allow_empty_referrer: bool = True) -> None:
        self.rules[playback_id] = PlaybackRule(playback_id, "ls_" + playback_id, signed,
                                               allowed_referrers, allow_empty_referrer)

    def token(self, playback_id: str, key_id: str = "k1", *, audience: Audience = "v",
              expires_in: float = 3600, not_before: float | None = None) -> str:
        return mint_playback_token(self.private[key_id], key_id=key_id,
                                   playback_id=playback_id, audience=audience,
                                   expires_in=expires_in, not_before=not_before,
                                   now=time.time())

    async def playback_rule(self, playback_id: str) -> PlaybackRule | None:
        self.rule_reads += 1
        return self.rules.get(playback_id)

    async def verification_key(self, key_id: str) -> VerificationKey | None:
        self.key_reads += 1
        return self.keys.get(key_id)
