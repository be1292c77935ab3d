"""Asking the running node over its API (control plane): what lives only in its memory or
needs its ingest (live facts, preflight). The token is GOLIVE_TOKEN, else the admin token."""

from __future__ import annotations

import os

from golive.settings import Settings


def node_token(settings: Settings) -> str | None:
    return os.environ.get("GOLIVE_TOKEN") or (
        settings.admin_token.get_secret_value() if settings.admin_token else None
    )


def node_api_url(settings: Settings) -> str:
    """The running node's `/api/v1` base URL as seen from this machine."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if settings.http_scheme == "https":
        # The token goes only where the certificate checks out: the name it was issued
        # for (public_host), not a loopback address it does not name.
        host = settings.advertised_host
    return f"{settings.http_scheme}://{host}:{settings.http_port}/api/v1"
