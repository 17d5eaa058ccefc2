"""SQLAlchemy's aiosqlite driver with each statement one trip to aiosqlite's thread.

aiosqlite runs SQLite in a thread of its own; every call is a trip there and back (a
queue, a thread wake-up, the event loop's wake-up: ~0.06 ms of CPU here). SQLAlchemy's
adapter makes four of them per statement (open a cursor, execute, fetch the rows, close
the cursor), which was most of the database's cost in a refresh grant
(docs/benchmarks.md). Here the four run together in SQLite's thread, as one call, and the
cursor the dialect sees holds what they returned; a commit or rollback with no
transaction open in SQLite (after a read, at the return to the pool) makes no trip.
Transactions, errors, server-side cursors and the dialect itself stay SQLAlchemy's and
aiosqlite's.

The one call goes through aiosqlite's ``Connection._execute``, which SQLAlchemy's own
adapter also reaches past (its queue, to set the isolation level); both are pinned, and
tests/db/test_sqlite_driver.py holds the behaviour.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

# description, rows, rowcount, lastrowid
_Outcome = tuple[Any, list[Any], int, int | None]


def _run_one(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Any] | None
) -> _Outcome:
    """One statement, start to end, in SQLite's thread."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Sequence[Any]]
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return None, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's buffered cursor, without a cursor of aiosqlite's behind it."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        # None: the base class's close() has no cursor of aiosqlite's to close.
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized: Any = {}
        self._rows: collections.deque[Any] = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: Any = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def _keep(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        async with self._adapt_connection._execute_mutex:
            driver = self._connection
            self._keep(await driver._execute(_run_one, driver._conn, operation, parameters))

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        async with self._adapt_connection._execute_mutex:
            driver = self._connection
            self._keep(await driver._execute(_run_many, driver._conn, operation, seq_of_parameters))

    async def _async_soft_close(self) -> None:
        # Nothing is open: the rows and the description are already here.
        return


class _Connection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's connection, with no trip for a commit or rollback when SQLite has no
    transaction open: sqlite3 does nothing then either. That is the case after every
    read (SQLAlchemy ends each block with a rollback) and at every return to the pool (a
    rollback again). ``in_transaction`` is SQLite's own flag, read here without a trip:
    nothing else runs on the connection between awaited statements."""

    __slots__ = ()
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = _OneTripCursor

    def _idle(self) -> bool:
        driver = self._connection
        return driver._connection is not None and not driver.in_transaction

    def commit(self) -> None:
        if not self._idle():
            super().commit()

    def rollback(self) -> None:
        if not self._idle():
            super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module for ``create_async_engine(..., module=OneTripDBAPI.load())``."""

    @classmethod
    def load(cls) -> OneTripDBAPI:
        import aiosqlite

        return cls(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)
