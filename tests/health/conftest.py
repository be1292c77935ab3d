"""Fixtures of the health tests: the e2e tests' publisher source, reused."""

from tests.e2e.conftest import source_flv  # noqa: F401  (fixture reused here)
