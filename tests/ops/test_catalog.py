"""ProfileCatalog over a real store: upgrade pinning, sync problems, history of a stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.store.conftest import store  # noqa: F401  (the fixture)

from golive.ops import ProfileCatalog
from golive.store import Store


async def test_streams_from_before_versioning_are_pinned_to_the_newest(
    store: Store, tmp_path: Path  # noqa: F811
) -> None:
    catalog = ProfileCatalog(store, tmp_path / "profiles")
    record, _ = await store.create_stream(name="old", profile="low-cpu")
    assert record.profile_version is None and record.profile_label == "low-cpu"
    gone, _ = await store.create_stream(name="gone", profile="deleted-file")
    assert await catalog.pin_unpinned(by="upgrade") == 1
    pinned = await store.get_stream(record.id)
    assert pinned is not None and pinned.profile_label == "low-cpu@1"
    [pin] = await store.list_profile_pins(record.id)
    assert (pin.pinned_by, pin.reason, pin.forced) == (
        "upgrade", "pinned at upgrade to versioned profiles", False)
    # A stream whose profile file is gone keeps its name; the pipeline falls back as before.
    left = await store.get_stream(gone.id)
    assert left is not None and left.profile_version is None


async def test_sync_reports_files_it_cannot_publish_and_publishes_the_rest(
    store: Store, tmp_path: Path  # noqa: F811
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "good.toml").write_text(
        'version = 2\n[[renditions]]\nname = "a"\nheight = 240\nvideo_bitrate_kbps = 300\n')
    (profiles / "bad.toml").write_text(
        'version = 1\n[[renditions]]\nname = "a"\nheight = 240\nvideo_bitrate_kbps = 1\n')
    (profiles / "huge.toml").write_text("# " + "x" * 70_000)
    (profiles / "Not-A-Name.toml").write_text("ignored = true")
    problems = await ProfileCatalog(store, profiles).sync()
    assert sorted(Path(p.source).name for p in problems) == ["bad.toml", "huge.toml"]
    bad = next(p for p in problems if p.source.endswith("bad.toml"))
    assert "renditions[0].video_bitrate_kbps: must be between 50 and 200000" in bad.message
    latest = {r.label for r in await store.list_latest_profiles()}
    assert latest == {"default@1", "low-cpu@1", "passthrough@1", "good@2"}


async def test_a_pin_to_an_unpublished_version_is_refused(
    store: Store, tmp_path: Path  # noqa: F811
) -> None:
    await ProfileCatalog(store, tmp_path).sync()
    record, _ = await store.create_stream(name="a", profile="default", profile_version=1,
                                          pinned_by="t")
    with pytest.raises(ValueError, match="default@5 is not published"):
        await store.pin_stream_profile(record.id, "default", 5, by="t")
    with pytest.raises(ValueError, match="nope@1 is not published"):
        await store.create_stream(name="b", profile="nope", profile_version=1, pinned_by="t")
    assert [s.name for s in await store.list_streams()] == ["a"]
