"""The pure parts of release profiles: spec parsing, diffs, and how narrow a forced change is."""

from __future__ import annotations

import re

import pytest

from golive.media import ProfileError, parse_profile
from golive.ops import FieldChange, ForcedChange, check_forced, parse_spec, profile_diff

BASE = """name = "p"
version = 1
[[renditions]]
name = "720p"
height = 720
video_bitrate_kbps = 3000
"""


def test_specs() -> None:
    assert parse_spec("default") == ("default", None)
    assert parse_spec("low-cpu@12") == ("low-cpu", 12)
    for bad in ("Default", "a@0", "a@", "@1", "a@1@2", "../x", "a@01", "a" * 33):
        with pytest.raises(ProfileError, match="NAME@VERSION"):
            parse_spec(bad)


def test_diff_lists_changed_settings_in_profile_order_and_ignores_version() -> None:
    old = parse_profile(BASE)
    new = parse_profile(
        BASE.replace("version = 1", "version = 2").replace("3000", "2500")
        + '[[renditions]]\nname = "360p"\nheight = 360\nvideo_bitrate_kbps = 700\n'
        + "[slo]\nstartup_p95_seconds = 2\n"
    )
    changes = profile_diff(old, new)
    paths = [c.path for c in changes]
    assert paths[0] == "renditions[0].video_bitrate_kbps"
    assert "renditions[1].height" in paths and "version" not in paths
    assert paths[-1] == "slo.startup_p95_seconds"
    added = next(c for c in changes if c.path == "renditions[1].height")
    assert (added.old, added.new) == (None, 360)
    assert profile_diff(old, parse_profile("# comment\n" + BASE)) == []
    assert old.content_hash() == parse_profile("# comment\n" + BASE).content_hash()
    assert old.content_hash() != new.content_hash()


CHANGES = [FieldChange("renditions[0].video_bitrate_kbps", 3000, 2500),
           FieldChange("alerts.min_ingest_bitrate_kbps", 150, 100)]


@pytest.mark.parametrize(("fields", "complaint"), [
    ((), "name the fields"),
    (("renditions",), "also touches alerts.min_ingest_bitrate_kbps"),
    (("renditions[0].video_bitrate", "alerts"), "also touches renditions[0].video_bitrate_kbps"),
    (("renditions", "alerts", "slo"), "do not change: slo"),
    (("renditions; drop table", "alerts"), "not a field path"),
    (tuple(f"a{i}" for i in range(40)), "at most 32"),
])
def test_a_forced_change_names_exactly_what_it_changes(
    fields: tuple[str, ...], complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        check_forced(ForcedChange("uplink", fields), CHANGES)


def test_a_forced_change_may_name_tables_or_single_fields() -> None:
    check_forced(ForcedChange("uplink", ("renditions", "alerts")), CHANGES)
    check_forced(ForcedChange("uplink", ("renditions[0]", "alerts.min_ingest_bitrate_kbps")),
                 CHANGES)
    with pytest.raises(ValueError, match="reason"):
        check_forced(ForcedChange("  ", ("renditions", "alerts")), CHANGES)
