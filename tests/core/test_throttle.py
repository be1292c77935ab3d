"""Failure throttling per address and repeated-log limiting, driven by a fake clock."""

from __future__ import annotations

import logging

import pytest

from golive.core.throttle import Cooldown, FailureThrottle, RepeatedLog, address_of, remote_of


@pytest.mark.parametrize(
    ("remote", "address"),
    [
        ("127.0.0.2:5555", "127.0.0.2"),
        ("[::1]:80", "::1"),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1"),  # an IPv4 client of a dual-stack socket
        ("::1", "::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("not an address", "not an address"),
    ],
)
def test_address_of(remote: str, address: str) -> None:
    assert address_of(remote) == address


def test_remote_of_is_what_address_of_takes_apart() -> None:
    assert remote_of("192.0.2.1", 1935) == "192.0.2.1:1935"
    assert remote_of("2001:db8::1", 1935) == "[2001:db8::1]:1935"
    assert remote_of("::ffff:192.0.2.1", 9000) == "192.0.2.1:9000"
    for host in ("192.0.2.1", "2001:db8::1"):
        assert address_of(remote_of(host, 40000)) == host


def test_burst_then_one_per_refill_interval() -> None:
    throttle = FailureThrottle(burst=3, rate=0.5)
    for _ in range(3):
        assert throttle.retry_after("1.2.3.4:1", 0.0) == 0
        throttle.failed("1.2.3.4:1", 0.0)
    # The bucket is empty: refused, from any port of that address.
    assert throttle.retry_after("1.2.3.4:9", 0.0) == pytest.approx(2.0)
    assert throttle.refused == 1
    # Other addresses are untouched.
    assert throttle.retry_after("1.2.3.5:1", 0.0) == 0
    # One token back after 1 / rate seconds.
    assert throttle.retry_after("1.2.3.4:1", 2.0) == 0
    throttle.failed("1.2.3.4:1", 2.0)
    assert throttle.retry_after("1.2.3.4:1", 2.5) > 0


def test_an_ipv6_guesser_is_throttled_across_its_64() -> None:
    # Any address of a /64 is the same subscriber: fresh ones do not refill the bucket.
    throttle = FailureThrottle(burst=2, rate=0.5)
    for host in ("[2001:db8:7:7::1]:1935", "[2001:db8:7:7::2]:1935"):
        throttle.failed(host, 0.0)
    assert throttle.retry_after("[2001:db8:7:7:dead:beef::3]:1935", 0.0) > 0
    assert throttle.retry_after("2001:db8:7:8::1", 0.0) == 0  # the next /64 is another
    assert len(throttle) == 1


def test_full_buckets_are_forgotten_and_the_table_is_bounded() -> None:
    throttle = FailureThrottle(burst=2, rate=1.0, max_addresses=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(throttle) == 100
    throttle.retry_after("10.0.3.231", 10.0)  # refilled: dropped from the table
    assert len(throttle) == 99


def test_repeated_log_lets_one_line_through_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RepeatedLog(logging.getLogger("golive.test"), interval=10)
    with caplog.at_level(logging.WARNING, logger="golive.test"):
        for i in range(1000):
            limiter.warning("k", i * 0.01, "refused %s", "x")
        limiter.warning("k", 10.5, "refused %s", "y")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "refused x"
    assert len(messages) == 2
    assert "refused y" in messages[1] and "999 more like this" in messages[1]


def test_cooldown_is_per_key_and_bounded() -> None:
    gate = Cooldown(10, max_keys=2)
    assert gate.allow("a", 0) and not gate.allow("a", 9.9) and gate.allow("a", 10)
    assert gate.allow("b", 0) and gate.allow("c", 0)  # "a" is the longest quiet: forgotten
    assert gate.allow("a", 11)
    assert not gate.allow("c", 1)
