"""Fixtures shared across test folders."""

from tests.support.postgres import postgres_server  # noqa: F401 - a session-wide fixture
