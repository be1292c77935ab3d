"""Operations (control plane): release profiles, pinned and frozen while live, and preflight.

`ProfileCatalog` publishes profile files as immutable versions in the store and pins
streams to them; the API and the CLI both go through it. `PreflightDesk` runs preflight
sessions: `PreflightPublishTarget` (in front of the broadcast hub) takes a publisher of a
stream with a waiting session off the air (its backup key joins the same session, and
`FailoverDrill` switches the session over to it and back), and the desk measures it
against the profile and pushes it to the stream's destinations.
"""

from golive.ops.failover_drill import DrillState, FailoverDrill
from golive.ops.preflight import (
    PREFLIGHT_MAX_DURATION,
    PREFLIGHT_MIN_DURATION,
    PreflightDesk,
    PreflightDestination,
    PreflightPublishTarget,
    PreflightRefused,
)
from golive.ops.preflight_checks import (
    Check,
    DestinationReport,
    FailoverReport,
    Loudness,
    PreflightCapture,
    SrtStats,
    TcpStats,
    judge,
    parse_ebur128,
)
from golive.ops.profiles import (
    FieldChange,
    ForcedChange,
    PinOutcome,
    ProfileCatalog,
    ProfileFrozen,
    SyncProblem,
    check_forced,
    document_profile,
    parse_spec,
    pin_details,
    pin_event,
    profile_diff,
)

__all__ = [
    "PREFLIGHT_MAX_DURATION",
    "PREFLIGHT_MIN_DURATION",
    "Check",
    "DestinationReport",
    "DrillState",
    "FailoverDrill",
    "FailoverReport",
    "FieldChange",
    "ForcedChange",
    "Loudness",
    "PinOutcome",
    "PreflightCapture",
    "PreflightDesk",
    "PreflightDestination",
    "PreflightPublishTarget",
    "PreflightRefused",
    "ProfileCatalog",
    "ProfileFrozen",
    "SrtStats",
    "SyncProblem",
    "TcpStats",
    "check_forced",
    "document_profile",
    "judge",
    "parse_ebur128",
    "parse_spec",
    "pin_details",
    "pin_event",
    "profile_diff",
]
