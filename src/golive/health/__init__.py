"""Health: the node's metrics, readiness, viewer experience (QoE) and alerts (side package).

Reads the pipeline's public surfaces; nothing in the pipeline imports it (app.py wires it).
`metrics` is the Prometheus registry read at scrape time, `readiness` the `/readyz` checks.
"""

from golive.health.metrics import MetricSources, NodeMetrics
from golive.health.readiness import Readiness

__all__ = ["MetricSources", "NodeMetrics", "Readiness"]
