"""Broadcast state moves only along its transition table; late sinks get the headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from golive.formats.tag import MediaTag, TagType
from golive.stream import Broadcast, BroadcastState, BroadcastStateError, PlaybackId, StreamPolicy
from golive.stream.broadcast import TRANSITIONS

POLICY = StreamPolicy(stream_id="ls_1", enabled=True, playback_ids=(PlaybackId("pb", False),),
                      profile="default", latency_mode="low", reconnect_window=10.0,
                      recording=False)


def broadcast() -> Broadcast:
    return Broadcast(id="bc_1", policy=POLICY, started_at=datetime.now(UTC))


def test_lifecycle_with_a_reconnect() -> None:
    b = broadcast()
    for state in (BroadcastState.ACTIVE, BroadcastState.RECONNECTING, BroadcastState.CONNECTED,
                  BroadcastState.ACTIVE, BroadcastState.ENDED):
        b.move_to(state)
    assert b.state is BroadcastState.ENDED
    assert b.stream_id == "ls_1"


@pytest.mark.parametrize("start", list(BroadcastState))
@pytest.mark.parametrize("target", list(BroadcastState))
def test_only_listed_transitions_are_allowed(start: BroadcastState,
                                             target: BroadcastState) -> None:
    b = broadcast()
    b.state = start
    if target in TRANSITIONS[start]:
        b.move_to(target)
        assert b.state is target
    else:
        with pytest.raises(BroadcastStateError):
            b.move_to(target)
        assert b.state is start


def test_nothing_leaves_ended_and_nothing_returns_to_connected_but_a_reconnect() -> None:
    assert TRANSITIONS[BroadcastState.ENDED] == frozenset()
    assert [s for s, targets in TRANSITIONS.items() if BroadcastState.CONNECTED in targets] == [
        BroadcastState.RECONNECTING
    ]


def test_replay_headers_primes_a_late_sink() -> None:
    b = broadcast()
    got: list[MediaTag] = []

    class Sink:
        def push(self, tag: MediaTag) -> None:
            got.append(tag)

    b.replay_headers(Sink())
    assert got == []  # nothing seen yet
    # AVC sequence header (codec id 7, packet type 0) with a minimal avcC.
    avc_config = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00"
                          + bytes([1, 0x42, 0, 0x1E, 0xFF, 0xE0, 0]))
    b.meter.observe(avc_config, 0.0)
    b.replay_headers(Sink())
    assert got == [b.meter.video_sequence_header] and got[0] is not None
