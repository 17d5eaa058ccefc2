"""Fixtures shared across test folders."""

import pytest

from tests.support.postgres import postgres_server  # noqa: F401 - a session-wide fixture


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the server's loop): one style, anyio's pytest marker."""
    return "asyncio"
