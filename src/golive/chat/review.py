"""The per-stream message review hook, the way AWS IVS Chat does it (chat).

Before a message is stored and broadcast, the stream's hook URL receives
`POST {"message": {...}}` and answers `{"result": "allow" | "deny", "text"?: replacement,
"reason"?: shown to the sender}`. No answer within the timeout, an HTTP error or a
malformed body applies the stream's configured fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_DENY_REASON = "message was not allowed"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    text: str  # what to store and broadcast (the replacement, if any)
    reason: str | None = None


class ReviewHook:
    """Asks review hooks about messages; one pooled HTTP client for the whole node."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def review(
        self, url: str, message: dict[str, Any], *, fallback: str, stream_id: str
    ) -> Verdict:
        text = str(message.get("text", ""))
        try:
            response = await self._client.post(url, json={"message": message})
            response.raise_for_status()
            body = response.json()
            result = body.get("result") if isinstance(body, dict) else None
            if result not in {"allow", "deny"}:
                raise ValueError(f"result must be allow or deny, got {result!r}")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("chat review hook failed stream_id=%s fallback=%s error=%s",
                        stream_id, fallback, type(exc).__name__)
            if fallback == "allow":
                return Verdict(True, text)
            return Verdict(False, text, "message could not be reviewed; try again later")
        reason = body.get("reason")
        reason = reason if isinstance(reason, str) and reason else None
        if result == "deny":
            return Verdict(False, text, (reason or DEFAULT_DENY_REASON)[:200])
        replacement = body.get("text")
        if isinstance(replacement, str):
            text = replacement
        return Verdict(True, text, reason)
