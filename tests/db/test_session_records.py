"""Ended sessions and used nonces (``app.sessions.records``): in memory, and shared by the
instances of one database (two engines on it), where only one of racing adds wins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from app.db.database import Database
from app.db.schema import ended_sessions, used_nonces
from app.sessions.records import (
    SWEEP_INTERVAL_SECONDS,
    DatabaseExpiringKeys,
    ExpiringKeys,
    MemoryExpiringKeys,
    session_records,
)
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio


async def _contract(keys: ExpiringKeys, clock: FakeClock) -> None:
    now = clock.now()
    assert not await keys.contains("sid-1")
    assert await keys.add("sid-1", until=now + 10)
    assert await keys.contains("sid-1")
    # Added once: the second add (a replay) loses.
    assert not await keys.add("sid-1", until=now + 10)
    assert not await keys.contains("sid-2")
    clock.advance(10)
    # Expired: absent, and free to be added again.
    assert not await keys.contains("sid-1")
    assert await keys.add("sid-1", until=clock.now() + 10)


async def test_memory_keys() -> None:
    clock = FakeClock()
    await _contract(MemoryExpiringKeys(clock), clock)


async def test_memory_keys_sweep_expired_ones() -> None:
    clock = FakeClock()
    keys = MemoryExpiringKeys(clock)
    for i in range(5):
        await keys.add(f"k{i}", until=clock.now() + 1)
    clock.advance(SWEEP_INTERVAL_SECONDS)
    await keys.add("fresh", until=clock.now() + 1)
    assert len(keys) == 1


@pytest.mark.parametrize("database", [None, Database("sqlite+aiosqlite:///:memory:")])
def test_without_a_database_other_processes_see_the_records_are_in_memory(
    database: Database | None,
) -> None:
    ended, nonces = session_records(database, FakeClock())
    assert isinstance(ended, MemoryExpiringKeys)
    assert isinstance(nonces, MemoryExpiringKeys)
    assert ended is not nonces


def test_a_database_file_holds_them(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}")
    ended, nonces = session_records(database, FakeClock())
    assert isinstance(ended, DatabaseExpiringKeys)
    assert isinstance(nonces, DatabaseExpiringKeys)


async def _with_two_instances(
    url: str, scenario: Callable[[Database, Database], Awaitable[None]]
) -> None:
    one, two = Database(url), Database(url)
    await one.start()
    await two.start()
    try:
        await scenario(one, two)
    finally:
        await one.close()
        await two.close()


async def _rows(db: Database, table: Table) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize("table", [ended_sessions, used_nonces], ids=lambda t: t.name)
async def test_database_keys(db_url: str, table: Table) -> None:
    clock = FakeClock()
    db = Database(db_url)
    await db.start()
    try:
        await _contract(DatabaseExpiringKeys(db.engine, table, clock, what="x"), clock)
    finally:
        await db.close()


async def test_a_session_ended_on_one_instance_is_ended_on_the_other(shared_db_url: str) -> None:
    async def scenario(one: Database, two: Database) -> None:
        clock = FakeClock()
        ended_here, _ = session_records(one, clock)
        ended_there, _ = session_records(two, clock)
        await ended_here.add("sid", until=clock.now() + 60)
        assert await ended_there.contains("sid")

    await _with_two_instances(shared_db_url, scenario)


async def test_racing_instances_spend_a_nonce_once(shared_db_url: str) -> None:
    async def scenario(one: Database, two: Database) -> None:
        clock = FakeClock()
        stores = [session_records(db, clock)[1] for db in (one, two) for _ in range(4)]
        wins = await asyncio.gather(*(s.add("nonce", until=clock.now() + 60) for s in stores))
        assert sorted(wins) == [False] * 7 + [True]

    await _with_two_instances(shared_db_url, scenario)


async def test_expired_rows_are_deleted(shared_db_url: str) -> None:
    async def scenario(one: Database, _: Database) -> None:
        clock = FakeClock()
        nonces = DatabaseExpiringKeys(one.engine, used_nonces, clock, what="x")
        for i in range(5):
            await nonces.add(f"n{i}", until=clock.now() + 1)
        assert await _rows(one, used_nonces) == 5
        clock.advance(SWEEP_INTERVAL_SECONDS)
        await nonces.add("fresh", until=clock.now() + 1)
        assert await _rows(one, used_nonces) == 1

    await _with_two_instances(shared_db_url, scenario)


async def test_keys_are_stored_hashed(shared_db_url: str) -> None:
    async def scenario(one: Database, _: Database) -> None:
        clock = FakeClock()
        await DatabaseExpiringKeys(one.engine, ended_sessions, clock, what="x").add(
            "the-session-id", until=clock.now() + 1
        )
        async with one.engine.connect() as conn:
            [key] = (await conn.execute(select(ended_sessions.c.key))).scalars().all()
        assert len(key) == 64 and "the-session-id" not in key

    await _with_two_instances(shared_db_url, scenario)
