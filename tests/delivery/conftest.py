"""Fixtures shared by the origin's test modules: one presentation ("p1", two renditions,
ten parts in) in a directory (tests/delivery/test_origin.py defines them)."""

from tests.delivery.test_origin import directory, feed

__all__ = ["directory", "feed"]
