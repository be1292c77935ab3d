"""Webhooks (side stage): signed, at-least-once delivery of events from the store's outbox.

The store writes one outbox row per event and endpoint with the event's own row
(`golive.store`); `WebhookDispatcher` sends them, one lane per endpoint; the API
checks targets with `resolve_target` before it saves them.
"""

from golive.webhooks.signing import SIGNATURE_HEADER, signature, verify_signature
from golive.webhooks.targets import ResolvedTarget, TargetRefused, resolve_target
from golive.webhooks.worker import Attempt, DeliveryPolicy, WebhookDispatcher

__all__ = [
    "SIGNATURE_HEADER",
    "Attempt",
    "DeliveryPolicy",
    "ResolvedTarget",
    "TargetRefused",
    "WebhookDispatcher",
    "resolve_target",
    "signature",
    "verify_signature",
]
