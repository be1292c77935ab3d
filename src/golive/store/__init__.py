"""Persistent state (control plane): SQLAlchemy models, migrations and repositories.

`Store` opens the database and answers for streams, broadcasts, events, API
tokens, webhook endpoints (with their delivery outbox) and the audit log with
frozen records; `StoreStreamDirectory` is the broadcast hub's view of
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
from golive.store.audit import Actor, AuditRepository
from golive.store.broadcasts import BroadcastRepository
from golive.store.chat import (
    MAX_BLOCKED_TERMS,
    MAX_TERM_LENGTH,
    ChatBanRecord,
    ChatMessageRecord,
    ChatSettingsRecord,
    ChatStore,
    NewChatMessage,
    fold_text,
    normalize_term,
)
from golive.store.db import StoreBusy
from golive.store.destinations import (
    MAX_NAME_LENGTH as MAX_DESTINATION_NAME_LENGTH,
)
from golive.store.destinations import (
    MAX_SECRET_LENGTH as MAX_DESTINATION_SECRET_LENGTH,
)
from golive.store.destinations import (
    DestinationLimit,
    DestinationRecord,
    DestinationStore,
)
from golive.store.directory import StoreStreamDirectory, stream_policy
from golive.store.facade import Store
from golive.store.models import TOKEN_SCOPES
from golive.store.outage import is_outage
from golive.store.profiles import ProfileConflict, ProfileRepository, StreamLive
from golive.store.recorder import EventRecorder
from golive.store.records import (
    ApiTokenRecord,
    AuditRecord,
    BroadcastRecord,
    BroadcastSampleRecord,
    EventRecord,
    PlaybackIdRecord,
    PreflightRecord,
    ProfilePinRecord,
    ProfileVersionRecord,
    SigningKeyRecord,
    StreamRecord,
    WebhookDeliveryRecord,
    WebhookEndpointRecord,
)
from golive.store.signing_keys import SigningKeyRepository, check_referrers, generate_key_pair
from golive.store.streams import StreamRepository
from golive.store.tokens import TokenRepository
from golive.store.views import (
    NewPlaybackEvent,
    PlaybackEventRecord,
    PlaybackViewRecord,
    PlaybackViewStore,
    ViewConflict,
)
from golive.store.webhooks import (
    AttemptOutcome,
    PendingDelivery,
    WebhookRepository,
    WebhookTarget,
    check_event_types,
    check_url,
)

__all__ = [
    "MAX_BLOCKED_TERMS",
    "MAX_DESTINATION_NAME_LENGTH",
    "MAX_DESTINATION_SECRET_LENGTH",
    "MAX_TERM_LENGTH",
    "TOKEN_SCOPES",
    "Actor",
    "ApiTokenRecord",
    "AssetInitRecord",
    "AssetRecord",
    "AssetRenditionRecord",
    "AssetSegmentRecord",
    "AssetStore",
    "AttemptOutcome",
    "AuditRecord",
    "AuditRepository",
    "BroadcastRecord",
    "BroadcastRepository",
    "BroadcastSampleRecord",
    "ChatBanRecord",
    "ChatMessageRecord",
    "ChatSettingsRecord",
    "ChatStore",
    "DestinationLimit",
    "DestinationRecord",
    "DestinationStore",
    "EventRecord",
    "EventRecorder",
    "NewChatMessage",
    "NewPlaybackEvent",
    "PendingDelivery",
    "PlaybackEventRecord",
    "PlaybackIdRecord",
    "PlaybackViewRecord",
    "PlaybackViewStore",
    "PreflightRecord",
    "ProfileConflict",
    "ProfilePinRecord",
    "ProfileRepository",
    "ProfileVersionRecord",
    "SigningKeyRecord",
    "SigningKeyRepository",
    "Store",
    "StoreBusy",
    "StoreStreamDirectory",
    "StreamLive",
    "StreamRecord",
    "StreamRepository",
    "TokenRepository",
    "ViewConflict",
    "WebhookDeliveryRecord",
    "WebhookEndpointRecord",
    "WebhookRepository",
    "WebhookTarget",
    "check_event_types",
    "check_referrers",
    "check_url",
    "fold_text",
    "generate_key_pair",
    "is_outage",
    "normalize_term",
    "stream_policy",
]
