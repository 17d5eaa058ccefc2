"""SQLite engines: one connection per process, one checkout at a time, WAL for files.

Concurrent requests of one process used to open up to 15 connections to a SQLite file
and fight for its write lock in SQLite's busy handler (p99 of seconds); on ``:memory:``
they shared one connection and so one transaction (StaticPool)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from app.db.database import Database
from app.db.engine import create_database_engine
from app.identity.db_stores import DatabaseKeyStore, DatabaseUserInfoStore
from app.identity.keys import StoredKey

from .conftest import finish, run_python

pytestmark = pytest.mark.anyio

SQLITE_BACKENDS = ("sqlite-file", "sqlite-memory")


@pytest.fixture(params=SQLITE_BACKENDS)
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}"
    return "sqlite+aiosqlite:///:memory:"


class PoolWatch:
    """Counts the DBAPI connections an engine opens and its concurrent checkouts."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.connects = 0
        self.checked_out = 0
        self.max_checked_out = 0
        sync = engine.sync_engine
        event.listen(sync, "connect", self._connect)
        event.listen(sync, "checkout", self._checkout)
        event.listen(sync, "checkin", self._checkin)

    def _connect(self, *_: Any) -> None:
        self.connects += 1

    def _checkout(self, *_: Any) -> None:
        self.checked_out += 1
        self.max_checked_out = max(self.max_checked_out, self.checked_out)

    def _checkin(self, *_: Any) -> None:
        self.checked_out -= 1


def test_the_pool_holds_one_connection(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    pool = engine.pool
    assert isinstance(pool, AsyncAdaptedQueuePool)
    assert (pool.size(), pool._max_overflow) == (1, 0)


async def test_concurrent_writers_share_one_connection_without_errors(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    watch = PoolWatch(db.engine)
    try:
        await db.start()
        users = DatabaseUserInfoStore(db.engine)
        keys = DatabaseKeyStore(db.engine)

        async def slow_transaction(i: int) -> None:
            # Holds its transaction across an await: the others must wait for it.
            async with db.engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO refresh_results VALUES (:k, 'done', NULL, 0)"),
                    {"k": f"k{i}"},
                )
                await asyncio.sleep(0.005)

        # With StaticPool (the old :memory: pool) one task's commit or rollback also
        # ended the others' transactions: rows went missing.
        await asyncio.gather(
            *(users.put(f"user:default/u{i % 7}", {"sub": f"u{i}"}) for i in range(60)),
            *(
                keys.add_key(StoredKey(kid=f"kid{i}", jwk={"kid": f"kid{i}"}, created_at=i))
                for i in range(20)
            ),
            *(slow_transaction(i) for i in range(20)),
            *(keys.list_keys() for _ in range(20)),
        )
        assert len(await keys.list_keys()) == 20
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM refresh_results")) == 20
            assert await conn.scalar(text("SELECT count(*) FROM user_info")) == 7
    finally:
        await db.close()
    assert watch.connects == 1
    assert watch.max_checked_out == 1


async def test_a_rollback_never_undoes_another_tasks_transaction(sqlite_url: str) -> None:
    # With a shared connection (StaticPool) B's insert would be in A's transaction.
    db = Database(sqlite_url)
    try:
        await db.start()
        a_inserted = asyncio.Event()

        async def a() -> None:
            with pytest.raises(RuntimeError):
                async with db.engine.begin() as conn:
                    await conn.execute(
                        text("INSERT INTO refresh_results VALUES ('a', 'x', NULL, 0)")
                    )
                    a_inserted.set()
                    await asyncio.sleep(0.05)
                    raise RuntimeError("roll back")

        async def b() -> None:
            await a_inserted.wait()
            async with db.engine.begin() as conn:
                await conn.execute(text("INSERT INTO refresh_results VALUES ('b', 'x', NULL, 0)"))

        await asyncio.gather(a(), b())
        async with db.engine.connect() as conn:
            keys = (await conn.execute(text("SELECT key FROM refresh_results"))).scalars()
            assert list(keys) == ["b"]
    finally:
        await db.close()


async def test_a_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}")
    try:
        await db.start()
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
    finally:
        await db.close()


_WRITER = """
import asyncio, sys
from app.db.database import Database
from app.identity.db_stores import DatabaseUserInfoStore

async def main():
    db = Database(sys.argv[1])
    try:
        await db.start()
        users = DatabaseUserInfoStore(db.engine)
        await asyncio.gather(*(users.put(f"user:default/{sys.argv[2]}{i}", {"i": i})
                               for i in range(100)))
    finally:
        await db.close()

asyncio.run(main())
"""


async def test_processes_sharing_a_file_all_write(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}"
    processes = [run_python(_WRITER, url, name) for name in ("a", "b", "c")]
    for process in processes:
        finish(process)

    async def count() -> int:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                return int(await conn.scalar(text("SELECT count(*) FROM user_info")) or 0)
        finally:
            await db.close()

    assert await count() == 300


async def test_a_connection_returned_mid_transaction_is_rolled_back(sqlite_url: str) -> None:
    engine = create_database_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        conn = await engine.connect()
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        driver = raw.driver_connection
        assert driver.in_transaction
        # Closed with neither commit nor rollback (a failure between statements).
        await conn.close()
        assert not driver.in_transaction
        async with engine.connect() as again:
            assert (await again.execute(text("SELECT count(*) FROM t"))).scalar() == 0
            # The write lock was released: another write goes through at once.
            await again.execute(text("INSERT INTO t VALUES (2)"))
            await again.commit()
    finally:
        await engine.dispose()
