"""The recording tests use the store tests' fresh SQLite store."""

from tests.store.conftest import store  # noqa: F401  (the fixture, for these tests too)
