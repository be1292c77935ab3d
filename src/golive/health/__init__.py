"""Health: metrics, readiness, viewer experience, and alerts that name the cause (a side package).

It reads the pipeline through public surfaces and events; nothing in the pipeline
imports it (`golive.app` wires it). `metrics` is the Prometheus registry read at scrape
time, `readiness` the `/readyz` checks, `alerts` the alert lifecycle and engine,
`diagnosis` the rules with their causes and fixes, `report` the post-event report.
"""

from golive.health.alerts import (
    TRANSITIONS,
    Alert,
    AlertBook,
    AlertEngine,
    AlertState,
    SrtSample,
)
from golive.health.diagnosis import (
    RULES,
    Diagnosis,
    EncoderSignals,
    Finding,
    Rule,
    SrtSignals,
    StreamSignals,
    ViewerGroup,
    ViewerSignals,
    ViewLag,
)
from golive.health.history import IngestHistory, IngestHistoryRetention
from golive.health.metrics import MetricSources, NodeMetrics
from golive.health.qoe import (
    GROUP_BY,
    STATE_EVENTS,
    QoeReport,
    QoeReports,
    QoeRetention,
    QoeSummary,
    SloResult,
    ViewQoe,
    qoe_report,
    slo_results,
    stream_qoe,
)
from golive.health.readiness import Readiness
from golive.health.recent import RecentViews
from golive.health.report import (
    MAX_TICKETS_BYTES,
    BroadcastReports,
    Ticket,
    TicketsError,
    build_report,
    parse_tickets,
    render_html,
)
from golive.health.viewers import ViewerWindows

__all__ = [
    "GROUP_BY",
    "MAX_TICKETS_BYTES",
    "RULES",
    "STATE_EVENTS",
    "TRANSITIONS",
    "Alert",
    "AlertBook",
    "AlertEngine",
    "AlertState",
    "BroadcastReports",
    "Diagnosis",
    "EncoderSignals",
    "Finding",
    "IngestHistory",
    "IngestHistoryRetention",
    "MetricSources",
    "NodeMetrics",
    "QoeReport",
    "QoeReports",
    "QoeRetention",
    "QoeSummary",
    "Readiness",
    "RecentViews",
    "Rule",
    "SloResult",
    "SrtSample",
    "SrtSignals",
    "StreamSignals",
    "Ticket",
    "TicketsError",
    "ViewLag",
    "ViewQoe",
    "ViewerGroup",
    "ViewerSignals",
    "ViewerWindows",
    "build_report",
    "parse_tickets",
    "qoe_report",
    "render_html",
    "slo_results",
    "stream_qoe",
]
