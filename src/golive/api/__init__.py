"""REST API under /api/v1 (control plane)."""

from golive.api.access_hooks import access_hooks_router
from golive.api.app import create_api_app
from golive.api.auth import Authenticator, Throttled
from golive.api.chat import chat_router
from golive.api.schemas import ingest_urls, live_stream_out, pipeline_facts_out, token_out
from golive.api.signing_keys import signing_keys_router

__all__ = [
    "Authenticator",
    "Throttled",
    "access_hooks_router",
    "chat_router",
    "create_api_app",
    "ingest_urls",
    "live_stream_out",
    "pipeline_facts_out",
    "signing_keys_router",
    "token_out",
]
