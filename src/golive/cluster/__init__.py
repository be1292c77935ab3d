"""Several golive nodes behind one name (a side package): which node holds which live
broadcast, so any node answers any playback id and a broadcast a dead node held goes
on elsewhere with its media sequence numbers continued.

Only used when `redis_url` is set; nothing in the pipeline imports it (`golive.app`
wires it). `registry` is the broadcast registry in Redis; `wakeups` tells the node
that sends an endpoint's webhooks of deliveries queued on any node.
"""

from golive.cluster.registry import BroadcastRegistry, OwnerEntry, SequenceEntry
from golive.cluster.wakeups import WebhookWakeups

__all__ = ["BroadcastRegistry", "OwnerEntry", "SequenceEntry", "WebhookWakeups"]
