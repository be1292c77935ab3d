"""Which database errors are an outage that passes, not a bad write (control plane).

A full disk ("database or disk is full"), a locked or unreachable database, a
connection the server dropped: the same write succeeds once the operator frees
space or the database returns, so writers keep it and retry with `Backoff`
instead of dropping it (`golive.core.Backoff`). Anything else (a constraint, a bug) is not retried.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
