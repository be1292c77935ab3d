"""The e2e source media fixture, for the webhook test that publishes."""

from __future__ import annotations

from tests.e2e.conftest import source_flv  # noqa: F401  (the fixture, for these tests too)
