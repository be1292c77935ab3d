"""REST API under /api/v1 (control plane)."""

from golive.api.access_hooks import access_hooks_router
from golive.api.app import create_api_app
from golive.api.assets import asset_out, assets_router
from golive.api.audit import STUDIO_CLIENT_HEADER, STUDIO_SCOPE_KEY, AuditTrail, audit_router
from golive.api.auth import SCOPES, Authenticator, Principal, Throttled
from golive.api.chat import chat_router
from golive.api.destinations import DestinationOut, destination_out, destinations_router
from golive.api.preflight import preflight_out, preflight_router
from golive.api.profiles import pin_out as profile_pin_out
from golive.api.profiles import validate_document
from golive.api.profiles import version_detail as profile_version_detail
from golive.api.profiles import version_out as profile_version_out
from golive.api.qoe import QoeSource, qoe_router
from golive.api.reports import ReportSource, reports_router
from golive.api.schemas import ingest_urls, live_stream_out, pipeline_facts_out, token_out
from golive.api.signing_keys import signing_keys_router
from golive.api.webhooks import delivery_out, webhook_out, webhooks_router

__all__ = [
    "SCOPES",
    "STUDIO_CLIENT_HEADER",
    "STUDIO_SCOPE_KEY",
    "AuditTrail",
    "Authenticator",
    "DestinationOut",
    "Principal",
    "QoeSource",
    "ReportSource",
    "Throttled",
    "access_hooks_router",
    "asset_out",
    "assets_router",
    "audit_router",
    "chat_router",
    "create_api_app",
    "delivery_out",
    "destination_out",
    "destinations_router",
    "ingest_urls",
    "live_stream_out",
    "pipeline_facts_out",
    "preflight_out",
    "preflight_router",
    "profile_pin_out",
    "profile_version_detail",
    "profile_version_out",
    "qoe_router",
    "reports_router",
    "signing_keys_router",
    "token_out",
    "validate_document",
    "webhook_out",
    "webhooks_router",
]
