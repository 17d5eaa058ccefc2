"""The async SQLAlchemy engine: SQLite through aiosqlite, PostgreSQL through psycopg 3."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from app.db.backstage_config import (
    DatabaseTarget,
    database_target_from_backstage,
    database_url_from_backstage,
)
from app.db.sqlite_driver import OneTripDBAPI

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
        options["module"] = OneTripDBAPI.load()
        # One connection per process, one checkout at a time. SQLite runs one write at a
        # time anyway: with several connections, this process's own transactions fought
        # for the file's lock and slept in SQLite's busy handler (p99 of 1-3 s under
        # load). A checkout waits for the connection instead (every use is one short
        # statement or transaction). For :memory: the schema lives in that connection;
        # unlike StaticPool (every checkout shares it), two transactions never interleave.
        options["poolclass"] = AsyncAdaptedQueuePool
        options["pool_size"] = 1
        options["max_overflow"] = 0
        options["pool_timeout"] = POOL_TIMEOUT_SECONDS
    elif (backend, driver) == ("postgresql", "psycopg"):
        # libpq rounds connect_timeout to whole seconds, with a minimum of 2.
        options["connect_args"] = {"connect_timeout": max(2, round(connect_timeout_seconds))}
        # A database restart must not leave dead connections in the pool.
        options["pool_pre_ping"] = True
        options["pool_timeout"] = POOL_TIMEOUT_SECONDS
    else:
        raise ValueError(f"unsupported database URL scheme '{parsed.drivername}'")
    engine = create_async_engine(parsed, **options)
    if backend == "sqlite" and not is_memory_sqlite(parsed) and parsed.database:
        path = parsed.database

        def create_private(*_args: Any) -> None:
            _create_private_file(path)

        event.listen(engine.sync_engine, "do_connect", create_private)
        # Processes sharing the file (serve --workers N) read while another one writes.
        event.listen(engine.sync_engine, "connect", _sqlite_file_connected)
    return engine


def _create_private_file(path: str) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 less the
    umask): it holds user info and sealed refresh results. SQLite gives its -wal and
    -shm files the database file's mode. An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except (FileExistsError, FileNotFoundError):
        # Exists already, or its directory does not: SQLite reports the latter.
        pass


def _sqlite_file_connected(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers neither wait for a writer nor block its commit (the mode is stored in
    the file; a local file system is required, as for any SQLite file shared by processes).
    Every write transaction here starts with its write, so WAL's snapshot conflicts
    (SQLITE_BUSY_SNAPSHOT on a read that turns into a write) cannot occur."""
    # Switching a file to WAL takes an exclusive lock that SQLite does not wait for (no
    # busy handler): processes opening a new file together get "database is locked".
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            cursor.close()
        time.sleep(0.02)
