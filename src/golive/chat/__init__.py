"""Live chat: WebSocket rooms per playback id, limits, moderation, review hook (side service).

`ChatService` (service.py) is built by the composition root; `websocket.py` holds
the `/chat/PLAYBACK_ID` route and the identity endpoint; the REST side lives in
`golive.api.chat`.
"""
