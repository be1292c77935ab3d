"""Live chat: WebSocket rooms per playback id, limits, moderation, review hook (side service).

`ChatService` (service.py) is built by the composition root; `websocket.py` holds
the `/chat/PLAYBACK_ID` route and the identity endpoint; `replay.py` the public
`/chat/PLAYBACK_ID/replay` (a time range of messages, for replay beside video); the
REST side lives in `golive.api.chat`.
"""

from golive.chat.identity import (
    ChatSigner,
    InvalidIdentity,
    load_chat_secret,
    validate_display_name,
    validate_user_id,
)
from golive.chat.replay import replay_routes
from golive.chat.review import ReviewHook
from golive.chat.service import ChatService
from golive.chat.transport import chat_websocket_protocol
from golive.chat.websocket import chat_routes

__all__ = [
    "ChatService",
    "ChatSigner",
    "InvalidIdentity",
    "ReviewHook",
    "chat_routes",
    "chat_websocket_protocol",
    "load_chat_secret",
    "replay_routes",
    "validate_display_name",
    "validate_user_id",
]
