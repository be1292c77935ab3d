"""Persistent state (control plane): SQLAlchemy models, migrations and repositories.

`Store` opens the database and answers for streams, broadcasts, events and API
tokens with frozen records; `StoreStreamDirectory` is the broadcast hub's view of
it. Chat and playback views have their own stores (`golive.store.chat`,
`golive.store.views`) over `Store.engine`.
"""

from golive.store.broadcasts import BroadcastRepository
from golive.store.directory import StoreStreamDirectory, stream_policy
from golive.store.facade import Store
from golive.store.recorder import EventRecorder
from golive.store.records import (
    ApiTokenRecord,
    BroadcastRecord,
    EventRecord,
    PlaybackIdRecord,
    StreamRecord,
)
from golive.store.streams import StreamRepository
from golive.store.tokens import TokenRepository

__all__ = [
    "ApiTokenRecord",
    "BroadcastRecord",
    "BroadcastRepository",
    "EventRecord",
    "EventRecorder",
    "PlaybackIdRecord",
    "Store",
    "StoreStreamDirectory",
    "StreamRecord",
    "StreamRepository",
    "TokenRepository",
    "stream_policy",
]
