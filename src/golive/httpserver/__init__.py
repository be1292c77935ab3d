"""The node's HTTP server: uvicorn set up with limits on heads, bodies and WebSocket messages (HTTP server).

Sits between the sockets and every HTTP route (the origin, the API, the pages,
WHIP/WHEP, chat): whatever a client sends is bounded here before a route sees it.
"""

from golive.httpserver.bodies import DEFAULT_ROUTE_LIMITS, BodyLimit, RouteLimit, RouteLimits
from golive.httpserver.budget import ConnectionBudget
from golive.httpserver.fast import FastHold
from golive.httpserver.headers import HeadLimits
from golive.httpserver.linger import Lingering, linger
from golive.httpserver.server import HttpLimits, connection_budget, server_config
from golive.httpserver.tls import HandshakeGate, TlsLimits

__all__ = [
    "DEFAULT_ROUTE_LIMITS",
    "BodyLimit",
    "ConnectionBudget",
    "FastHold",
    "HandshakeGate",
    "HeadLimits",
    "HttpLimits",
    "Lingering",
    "RouteLimit",
    "RouteLimits",
    "TlsLimits",
    "connection_budget",
    "linger",
    "server_config",
]
