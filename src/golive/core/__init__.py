"""Domain types and the event bus shared by every stage (control plane)."""

from golive.core.addresses import (
    IPAddress,
    OutboundRefused,
    is_public,
    outbound_addresses,
    resolve_addresses,
)
from golive.core.backoff import Backoff
from golive.core.buckets import BucketTable, TokenBucket
from golive.core.capacity import RESERVED_FILES, connection_ceiling, raise_open_file_limit
from golive.core.collector import tune_garbage_collector
from golive.core.events import Event, EventBus, EventType, Subscription, utcnow
from golive.core.limits import Admission, Limit, RateLimits
from golive.core.periodic import PeriodicSweep
from golive.core.redislink import RedisLink, peer_payload, stop_tasks
from golive.core.secrets import (
    hash_api_token,
    hash_stream_key,
    new_api_token,
    new_playback_id,
    new_stream_key,
    random_id,
)
from golive.core.sockets import bind_datagram, bind_stream
from golive.core.throttle import (
    Cooldown,
    FailureThrottle,
    RepeatedLog,
    address_of,
    client_key,
    remote_of,
)
from golive.core.tls import HandshakeGate, TlsLimits, check_tls_layer

__all__ = [
    "RESERVED_FILES",
    "Admission",
    "Backoff",
    "BucketTable",
    "Cooldown",
    "Event",
    "EventBus",
    "EventType",
    "FailureThrottle",
    "HandshakeGate",
    "IPAddress",
    "Limit",
    "OutboundRefused",
    "PeriodicSweep",
    "RateLimits",
    "RedisLink",
    "RepeatedLog",
    "Subscription",
    "TlsLimits",
    "TokenBucket",
    "address_of",
    "bind_datagram",
    "bind_stream",
    "check_tls_layer",
    "client_key",
    "connection_ceiling",
    "hash_api_token",
    "hash_stream_key",
    "is_public",
    "new_api_token",
    "new_playback_id",
    "new_stream_key",
    "outbound_addresses",
    "peer_payload",
    "raise_open_file_limit",
    "random_id",
    "remote_of",
    "resolve_addresses",
    "stop_tasks",
    "tune_garbage_collector",
    "utcnow",
]
