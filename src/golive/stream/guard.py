"""Slows down stream-key guessing on every ingest protocol at once (stream).

RTMP, SRT and WHIP all open publishers through one `PublishTarget`, so wrapping it
throttles failed key checks per source address everywhere: an address that has
spent its burst of wrong keys is refused before the key is even looked up, with a
reason the publisher can show, and the refusal is logged at most once per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from golive.core import FailureThrottle, RepeatedLog, address_of
from golive.stream.publish import (
    Disconnect,
    Publisher,
    PublishRefused,
    PublishTarget,
    RefusalReason,
)

log = logging.getLogger(__name__)

# Refusals that say the key was wrong, as opposed to "right key, not now".
_GUESSES = frozenset({RefusalReason.UNKNOWN_KEY})


class GuardedPublishTarget:
    """A `PublishTarget` that refuses addresses which keep presenting unknown keys."""

    def __init__(self, target: PublishTarget, throttle: FailureThrottle, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._target = target
        self.throttle = throttle
        self._clock = clock
        self._log = RepeatedLog(log)

    async def open_publisher(
        self,
        stream_key: str,
        *,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None = None,
    ) -> Publisher:
        now = self._clock()
        wait = await self.throttle.check(remote_address, now)
        if wait > 0:
            address = address_of(remote_address)
            self._log.warning(address, now,
                              "publish throttled protocol=%s address=%s retry_after=%.0fs",
                              protocol, address, wait)
            raise PublishRefused(
                RefusalReason.THROTTLED,
                f"too many wrong stream keys from this address; retry in {wait:.0f} s",
            )
        try:
            return await self._target.open_publisher(
                stream_key, protocol=protocol, remote_address=remote_address,
                disconnect=disconnect,
            )
        except PublishRefused as refused:
            if refused.reason in _GUESSES:
                await self.throttle.record(remote_address, self._clock())
            raise
