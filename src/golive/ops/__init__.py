"""Operations (control plane): release profiles, pinned and frozen while live.

`ProfileCatalog` publishes profile files as immutable versions in the store and pins
streams to them; the API and the CLI both go through it.
"""

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
    "FieldChange",
    "ForcedChange",
    "PinOutcome",
    "ProfileCatalog",
    "ProfileFrozen",
    "SyncProblem",
    "check_forced",
    "document_profile",
    "parse_spec",
    "pin_details",
    "pin_event",
    "profile_diff",
]
