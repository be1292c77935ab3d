"""The preflight failover drill on synthetic publishers: the programme goes over to the
backup at its keyframe, comes back at the primary's next one, and its timestamps never
go back; a backup that leaves mid-drill fails it."""

from __future__ import annotations

from itertools import pairwise

from tests.ops.test_preflight_checks import AAC_48K_STEREO, video_header

from golive.formats import FlvReader, MediaTag, TagType, parse_video_tag
from golive.ops import DrillState, FailoverDrill


def publisher(start_ms: int, seconds: float, marker: int) -> list[MediaTag]:
    """Headers, then 30 fps video with a keyframe a second and audio; `marker` in each frame."""
    tags = [video_header(), MediaTag(TagType.AUDIO, 0, bytes((0xAF, 0)) + AAC_48K_STEREO)]
    for i in range(int(seconds * 30)):
        ms = start_ms + round(i * 1000 / 30)
        key = i % 30 == 0
        tags.append(MediaTag(TagType.VIDEO, ms, bytes((0x17 if key else 0x27, 1, 0, 0, 0,
                                                       marker)) + bytes(200)))
        tags.append(MediaTag(TagType.AUDIO, ms, bytes((0xAF, 1, marker)) + bytes(20)))
    return tags


def programme(drill: FailoverDrill) -> list[MediaTag]:
    return FlvReader().feed(bytes(drill.flv))


def run(drill: FailoverDrill, primary: list[MediaTag], backup: list[MediaTag],
        backup_leaves_at: int | None = None) -> None:
    """Both publishers in arrival order: the n-th tag of each arrives together (the
    backup's first); the backup leaves at its own media time `backup_leaves_at`."""
    left = False
    for i in range(max(len(primary), len(backup))):
        if i < len(backup) and not left:
            tag = backup[i]
            if backup_leaves_at is not None and tag.timestamp >= backup_leaves_at:
                left = True
                drill.backup_left()
            else:
                drill.backup(tag)
        if i < len(primary):
            drill.primary(primary[i])


def test_switches_to_the_backup_and_back_on_keyframes() -> None:
    drill = FailoverDrill(switch_after=1.0, backup_seconds=2.0, max_bytes=8 << 20)
    # The backup's clock is 50 s away from the primary's: the programme's is its own.
    run(drill, publisher(0, 6, marker=1), publisher(50_000, 6, marker=2))
    assert drill.state is DrillState.DONE and drill.switched and drill.returned
    assert drill.backup_connected and drill.backup_media_ms >= 2000
    tags = programme(drill)
    video = [t for t in tags if t.type is TagType.VIDEO and parse_video_tag(t.body).is_frame]
    assert drill.video_frames == len(video)
    stamps = [t.timestamp for t in video]
    assert all(b > a for a, b in pairwise(stamps)), stamps
    assert all(b - a <= 100 for a, b in pairwise(stamps))  # no hole at either switch
    markers = [t.body[5] for t in video]
    runs = [m for i, m in enumerate(markers) if i == 0 or markers[i - 1] != m]
    assert runs == [1, 2, 1]
    # Each run opens on a keyframe, after the publisher's sequence header.
    for i, m in enumerate(markers):
        if i == 0 or markers[i - 1] != m:
            assert parse_video_tag(video[i].body).is_keyframe
    backup_frames = markers.count(2)
    assert 2.0 <= backup_frames / 30 <= 3.1


def test_no_backup_never_switches_and_a_leaving_backup_fails() -> None:
    alone = FailoverDrill(switch_after=1.0, backup_seconds=2.0, max_bytes=8 << 20)
    for tag in publisher(0, 4, marker=1):
        alone.primary(tag)
    assert alone.state is DrillState.WAITING and not alone.switched
    alone.give_up("no backup publisher connected")
    assert alone.settled and alone.reason == "no backup publisher connected"

    left = FailoverDrill(switch_after=1.0, backup_seconds=2.0, max_bytes=8 << 20)
    run(left, publisher(0, 6, marker=1), publisher(0, 6, marker=2), backup_leaves_at=2000)
    assert left.switched and not left.returned and left.state is DrillState.FAILED
    assert left.reason is not None and "disconnected" in left.reason


def test_the_programme_is_bounded() -> None:
    drill = FailoverDrill(switch_after=1.0, backup_seconds=2.0, max_bytes=20_000)
    run(drill, publisher(0, 6, marker=1), publisher(0, 6, marker=2))
    assert drill.state is DrillState.FAILED and len(drill.flv) <= 20_000
    assert drill.reason is not None and "20000 bytes" in drill.reason
