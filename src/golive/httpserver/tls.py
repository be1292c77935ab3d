"""HTTPS on the HTTP port with TLS handshakes bounded in time and in number (HTTP server).

uvicorn hands its certificate to `loop.create_server(ssl=...)`, which gives every
handshake 60 seconds and no limit on how many are in progress. So golive ends TLS below
uvicorn through a `golive.core.tls.HandshakeGate` (handshakes bounded in time, and counted:
past the limit a new connection is reset unread).

uvicorn is told nothing of TLS: its per-connection protocol factory is this module's (the
`http` protocol argument), it sees the decrypted stream and the scheme `https` (the TLS
transport answers `sslcontext`), and every HTTP limit applies as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from golive.core import HandshakeGate, TlsLimits, check_tls_layer

__all__ = ["HandshakeGate", "TlsLimits", "check_tls_layer", "uvicorn_protocol_factory"]

ProtocolFactory = Callable[..., asyncio.BaseProtocol]


def uvicorn_protocol_factory(gate: HandshakeGate, http: type[asyncio.Protocol]) -> ProtocolFactory:
    """What uvicorn calls per accepted connection in place of the `http` class: that class's
    protocol inside `gate`'s TLS."""

    def create(*, config: Config, server_state: ServerState, app_state: dict[str, Any],
               _loop: asyncio.AbstractEventLoop | None = None) -> asyncio.BaseProtocol:
        return gate.wrap(lambda: http(config=config,  # type: ignore[call-arg]
                                      server_state=server_state, app_state=app_state,
                                      _loop=_loop), _loop)

    return create
