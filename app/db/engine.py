"""The async SQLAlchemy engine: SQLite through aiosqlite, PostgreSQL through psycopg 3."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from app.db.backstage_config import (
    DatabaseTarget,
    database_target_from_backstage,
    database_url_from_backstage,
)

DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
# How long a SQLite connection waits for another one's write lock (migrations included).
SQLITE_BUSY_TIMEOUT_SECONDS = 15.0
POOL_TIMEOUT_SECONDS = 10.0

__all__ = [
    "DatabaseTarget",
    "create_database_engine",
    "database_target_from_backstage",
    "database_url_from_backstage",
    "is_memory_sqlite",
]


def is_memory_sqlite(url: str | URL) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create_database_engine(
    url: str, *, connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
) -> AsyncEngine:
    """An engine for ``url`` (no connection is made yet).

    Raises:
        ValueError: for a URL that is neither ``sqlite+aiosqlite`` nor ``postgresql+psycopg``.
    """
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    options: dict[str, Any] = {}
    if (backend, driver) == ("sqlite", "aiosqlite"):
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        if is_memory_sqlite(url):
            # One connection for every checkout: the schema lives in that connection.
            options["poolclass"] = StaticPool
    elif (backend, driver) == ("postgresql", "psycopg"):
        # libpq rounds connect_timeout to whole seconds, with a minimum of 2.
        options["connect_args"] = {"connect_timeout": max(2, round(connect_timeout_seconds))}
        # A database restart must not leave dead connections in the pool.
        options["pool_pre_ping"] = True
        options["pool_timeout"] = POOL_TIMEOUT_SECONDS
    else:
        raise ValueError(f"unsupported database URL scheme '{parsed.drivername}'")
    return create_async_engine(parsed, **options)
