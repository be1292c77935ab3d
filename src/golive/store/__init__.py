"""Persistent state (control plane): SQLAlchemy models, migrations and repositories.

`Store` opens the database and answers for streams, broadcasts, events and API
tokens with frozen records; `StoreStreamDirectory` is the broadcast hub's view of
it. Chat and playback views have their own stores (`golive.store.chat`,
`golive.store.views`) over `Store.engine`.
"""

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
from golive.store.recorder import EventRecorder
from golive.store.records import (
    ApiTokenRecord,
    BroadcastRecord,
    EventRecord,
    PlaybackIdRecord,
    SigningKeyRecord,
    StreamRecord,
)
from golive.store.signing_keys import SigningKeyRepository, check_referrers, generate_key_pair
from golive.store.streams import StreamRepository
from golive.store.tokens import TokenRepository
from golive.store.views import NewPlaybackEvent, PlaybackViewStore, ViewConflict

__all__ = [
    "ApiTokenRecord",
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
    "SigningKeyRecord",
    "SigningKeyRepository",
    "Store",
    "StoreStreamDirectory",
    "StreamRecord",
    "StreamRepository",
    "TokenRepository",
    "ViewConflict",
    "check_referrers",
    "generate_key_pair",
    "stream_policy",
]
