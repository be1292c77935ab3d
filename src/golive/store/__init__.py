"""Persistent state (control plane): SQLAlchemy models, migrations and repositories.

`Store` opens the database and answers for streams, broadcasts, events and API
tokens with frozen records; `StoreStreamDirectory` is the broadcast hub's view of
it. Chat and playback views have their own stores (`golive.store.chat`,
`golive.store.views`) over `Store.engine`, and so does the recording index
(`golive.store.assets`).
"""

from golive.store.assets import (
    AssetInitRecord,
    AssetRecord,
    AssetRenditionRecord,
    AssetSegmentRecord,
    AssetStore,
)
from golive.store.broadcasts import BroadcastRepository
from golive.store.chat import (
    ChatBanRecord,
    ChatMessageRecord,
    ChatSettingsRecord,
    ChatStore,
    NewChatMessage,
)
from golive.store.directory import StoreStreamDirectory, stream_policy
from golive.store.facade import Store
from golive.store.outage import is_outage
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
from golive.store.views import NewPlaybackEvent, PlaybackViewStore, ViewConflict

__all__ = [
    "ApiTokenRecord",
    "AssetInitRecord",
    "AssetRecord",
    "AssetRenditionRecord",
    "AssetSegmentRecord",
    "AssetStore",
    "BroadcastRecord",
    "BroadcastRepository",
    "ChatBanRecord",
    "ChatMessageRecord",
    "ChatSettingsRecord",
    "ChatStore",
    "EventRecord",
    "EventRecorder",
    "NewChatMessage",
    "NewPlaybackEvent",
    "PlaybackIdRecord",
    "PlaybackViewStore",
    "Store",
    "StoreStreamDirectory",
    "StreamRecord",
    "StreamRepository",
    "TokenRepository",
    "ViewConflict",
    "is_outage",
    "stream_policy",
]
