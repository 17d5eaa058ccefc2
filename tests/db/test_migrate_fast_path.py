"""migrate() without alembic: an empty database gets the head schema at once, a current
one is left alone; both must be exactly what the alembic migrations give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.database import Database
from app.db.migrate import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    _alembic_config,
    ensure_database_exists,
)
from app.db.schema import VERSION_TABLE

from .conftest import BACKENDS, _fresh_url, finish, run_python

pytestmark = pytest.mark.anyio


def test_head_revision_is_the_newest_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == HEAD_REVISION


def _dump(conn: Connection) -> dict[str, Any]:
    """Everything a migration decides about the schema, as the database reports it."""
    inspector = inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "indexes": sorted(map(repr, inspector.get_indexes(table))),
            "unique": sorted(map(repr, inspector.get_unique_constraints(table))),
            "foreign keys": sorted(map(repr, inspector.get_foreign_keys(table))),
            "rows": sorted(conn.execute(text(f"SELECT * FROM {table}")).all())
            if table == VERSION_TABLE
            else [],
        }
    if conn.dialect.name == "sqlite":
        # The DDL text itself.
        master = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        tables["sqlite_master"] = [tuple(row) for row in conn.exec_driver_sql(master)]
    return tables


async def _schema(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_dump)


async def _alembic_upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))


@pytest.fixture(params=BACKENDS)
def two_fresh_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two fresh, empty databases of one kind."""
    kind = str(request.param)
    return _fresh_url(kind, tmp_path / "a", request), _fresh_url(kind, tmp_path / "b", request)


async def test_the_fast_schema_is_the_migrated_schema(two_fresh_urls: tuple[str, str]) -> None:
    fast = Database(two_fresh_urls[0])
    slow = Database(two_fresh_urls[1])
    try:
        await fast.start()
        await ensure_database_exists(slow.engine)
        await _alembic_upgrade(slow.engine)
        assert await _schema(fast.engine) == await _schema(slow.engine)
    finally:
        await fast.close()
        await slow.close()


_START = """
import asyncio, sys
from app.db.database import Database

async def main():
    db = Database(sys.argv[1])
    try:
        await db.start()
    finally:
        await db.close()
    print(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "psycopg"}))

asyncio.run(main())
"""


def test_fresh_and_current_databases_start_without_alembic(shared_db_url: str) -> None:
    expected = "['psycopg']" if shared_db_url.startswith("postgresql") else "[]"
    assert finish(run_python(_START, shared_db_url)).strip() == expected  # fresh
    assert finish(run_python(_START, shared_db_url)).strip() == expected  # current


async def test_an_older_revision_is_upgraded_by_alembic(shared_db_url: str) -> None:
    db = Database(shared_db_url)
    try:
        await db.start()
        async with db.engine.begin() as conn:
            for table in ("refresh_results", "ended_sessions", "used_nonces"):
                await conn.execute(text(f"DROP TABLE {table}"))
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0001'"))
    finally:
        await db.close()
    # In another process: this one has alembic imported already.
    assert "alembic" in finish(run_python(_START, shared_db_url))
    db = Database(shared_db_url)
    try:
        schema = await _schema(db.engine)
        assert schema[VERSION_TABLE]["rows"] == [(HEAD_REVISION,)]
        assert [c[0] for c in schema["refresh_results"]["columns"]] == [
            "key",
            "status",
            "result",
            "expires_at",
        ]
        for table in ("ended_sessions", "used_nonces"):
            assert [c[0] for c in schema[table]["columns"]] == ["key", "expires_at"]
    finally:
        await db.close()
