"""Fixtures the health tests share with the end-to-end ones."""

from tests.e2e.conftest import source_flv  # noqa: F401  (the session fixture, for these tests)
