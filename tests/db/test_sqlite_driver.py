"""The SQLite driver (app/db/sqlite_driver.py): one trip to aiosqlite's thread per
statement, and otherwise what SQLAlchemy's aiosqlite driver does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_database_engine
from app.db.sqlite_driver import OneTripDBAPI

pytestmark = pytest.mark.anyio

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, unique=True, nullable=False),
)


@pytest.fixture(params=("sqlite-file", "sqlite-memory"))
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}"
        if request.param == "sqlite-file"
        else "sqlite+aiosqlite:///:memory:"
    )
    made = create_database_engine(url)
    async with made.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield made
    await made.dispose()


class Trips:
    """Counts the calls queued to the connection's aiosqlite thread."""

    def __init__(self, driver: Any) -> None:
        self.count = 0
        real = driver._execute

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await real(fn, *args, **kwargs)

        driver._execute = counted


async def _trips(engine: AsyncEngine) -> Trips:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return Trips(raw.driver_connection)


async def test_the_engine_uses_it(engine: AsyncEngine) -> None:
    assert isinstance(engine.dialect.dbapi, OneTripDBAPI)


async def test_a_statement_is_one_trip(engine: AsyncEngine) -> None:
    trips = await _trips(engine)
    async with engine.connect() as conn:
        await conn.execute(insert(items).values(name="a"))
        assert trips.count == 1
        await conn.commit()
        assert trips.count == 2
    # SQLAlchemy's aiosqlite adapter made four per statement: cursor, execute, fetch, close.
    async with engine.connect() as conn:
        rows = (await conn.execute(select(items.c.name))).scalars().all()
        assert rows == ["a"]
        assert trips.count == 3


async def test_no_trip_to_end_a_transaction_sqlite_does_not_have(engine: AsyncEngine) -> None:
    """SQLAlchemy ends every block with a commit or a rollback, and the pool rolls back
    at each return: a trip each, until SQLite has a transaction to end."""
    trips = await _trips(engine)
    async with engine.connect() as conn:
        await conn.execute(select(items.c.name))
    assert trips.count == 1
    async with engine.begin() as conn:
        await conn.execute(select(items.c.name))
    assert trips.count == 2
    async with engine.connect() as conn:
        await conn.execute(insert(items).values(name="a"))
        await conn.commit()
    assert trips.count == 4
    async with engine.connect() as conn:
        await conn.execute(insert(items).values(name="b"))
    # Closed without a commit: rolled back, one trip.
    assert trips.count == 6
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await conn.commit()
        # A transaction SQLAlchemy did not begin: the pool's reset still ends it.
        await driver.execute("INSERT INTO items (name) VALUES ('c')")
        assert driver.in_transaction
    assert not driver.in_transaction
    async with engine.connect() as conn:
        assert (await conn.execute(select(items.c.name))).scalars().all() == ["a"]


async def test_rows_columns_rowcount_and_new_ids(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(insert(items).values(name="a"))
        second = await conn.execute(insert(items).values(name="b"))
        assert first.inserted_primary_key == (1,)
        assert second.lastrowid == 2
        many = await conn.execute(insert(items), [{"name": "c"}, {"name": "d"}])
        assert many.rowcount == 2
    async with engine.begin() as conn:
        result = await conn.execute(select(items).order_by(items.c.id))
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(row) for row in result] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
        updated = await conn.execute(
            items.update().where(items.c.id > 2).values(name=items.c.name + "!")
        )
        assert updated.rowcount == 2
        returned = await conn.execute(
            items.delete().where(items.c.id == 4).returning(items.c.id, items.c.name)
        )
        assert [tuple(row) for row in returned] == [(4, "d!")]
        none = await conn.execute(items.delete().where(items.c.id == 99))
        assert none.rowcount == 0
        fetched = (await conn.execute(select(items.c.id).order_by(items.c.id))).fetchmany(2)
        assert [row.id for row in fetched] == [1, 2]


async def test_errors_are_sqlalchemy_s_and_the_transaction_rolls_back(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(items).values(name="a"))
    with pytest.raises(exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(items).values(name="b"))
            await conn.execute(insert(items).values(name="a"))
    with pytest.raises(exc.OperationalError):
        async with engine.connect() as conn:
            await conn.execute(text("SELEC nothing"))
    async with engine.connect() as conn:
        assert (await conn.execute(select(items.c.name))).scalars().all() == ["a"]


async def test_streamed_results_keep_a_server_side_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(items), [{"name": str(i)} for i in range(50)])
    async with engine.connect() as conn:
        streamed = await conn.stream(select(items.c.id).order_by(items.c.id))
        seen = [row.id async for row in streamed]
    assert seen == list(range(1, 51))


async def test_a_closed_connection_is_an_operational_error(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        await raw.driver_connection.close()
        with pytest.raises(exc.DBAPIError):
            await conn.execute(select(items.c.id))
        await conn.invalidate()
