"""The lingering close's clock: quiet time renewed by what the client sends, capped overall."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from golive.httpserver import linger


class Clock:
    """The loop's `time` and `call_at`, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, at: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        self.timers.append((at, callback))
        return cast(asyncio.TimerHandle, _Handle())

    def advance(self, to: float) -> None:
        self.now = to
        while due := [t for t in self.timers if t[0] <= to]:
            for timer in due:
                self.timers.remove(timer)
                timer[1]()


class _Handle:
    def cancel(self) -> None:
        pass


class Transport:
    def __init__(self) -> None:
        self.closed = False
        self.eof = False

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def lingering(clock: Clock, transport: Transport) -> Any:
    return linger(cast(asyncio.Transport, transport), cast(asyncio.AbstractEventLoop, clock),
                  quiet=2.0, most=30.0)


def test_a_client_that_stops_sending_is_closed_after_the_quiet_time() -> None:
    clock, transport = Clock(), Transport()
    lingering(clock, transport)
    assert transport.eof and not transport.closed
    clock.advance(1.9)
    assert not transport.closed
    clock.advance(2.0)
    assert transport.closed


def test_a_client_still_sending_keeps_the_socket_until_it_goes_quiet() -> None:
    # A large refused body on a busy machine: 4 MiB still arriving after the first
    # quiet time would have ended. Closed under its writes, its answer is lost to a reset.
    clock, transport = Clock(), Transport()
    held = lingering(clock, transport)
    for t in (1.0, 2.5, 4.0, 5.5):
        clock.advance(t)
        held.heard()
    clock.advance(7.0)
    assert not transport.closed
    clock.advance(7.5)
    assert transport.closed


def test_a_client_that_never_stops_is_closed_at_the_cap() -> None:
    clock, transport = Clock(), Transport()
    held = lingering(clock, transport)
    t = 0.0
    while t < 40:
        t += 0.5
        clock.advance(t)
        held.heard()
        if transport.closed:
            break
    assert transport.closed and clock.now == 30.0
