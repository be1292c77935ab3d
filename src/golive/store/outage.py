"""Which database errors are an outage that passes, not a bad write (control plane).

A full disk ("database or disk is full"), a locked or unreachable database, a
connection the server dropped: the same write succeeds once the operator frees
space or the database returns, so writers keep it and retry with `Backoff`
instead of dropping it. Anything else (a constraint, a bug) is not retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, OperationalError


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(slots=True)
class Backoff:
    """Seconds to wait before each retry: `first`, doubling up to `longest`; `reset` on success."""

    first: float = 0.5
    longest: float = 30.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.first <= 0 or self.longest < self.first:
            raise ValueError("backoff needs 0 < first <= longest")
        self._next = self.first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.longest, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first
