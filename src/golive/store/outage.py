"""Which database errors are an outage that passes, not a bad write (control plane).

A full disk ("database or disk is full"), writers queued past their wait (`StoreBusy`), a locked or unreachable database, a
connection the server dropped (on PostgreSQL: SQLSTATE classes 08 connection exception
and 53 insufficient resources, and 57P0x the server shutting down or starting): the same write succeeds once the operator frees
space or the database returns, so writers keep it and retry with `Backoff`
instead of dropping it (`golive.core.Backoff`). Anything else (a constraint, a bug) is not retried.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

from golive.store.db import StoreBusy

OUTAGE_SQLSTATE_PREFIXES = ("08", "53", "57P")


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | StoreBusy):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(OUTAGE_SQLSTATE_PREFIXES)
