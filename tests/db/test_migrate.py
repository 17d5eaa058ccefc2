"""Schema migrations: idempotent, safe for instances that start together, and able to
adopt a database that Backstage's auth plugin already migrated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import ServiceUnavailableError
from app.db.database import Database
from app.db.schema import VERSION_TABLE
from tests.support.postgres import PostgresServer

from .conftest import finish, run_python

pytestmark = pytest.mark.anyio


async def _schema(engine: AsyncEngine) -> dict[str, set[str]]:
    async with engine.connect() as conn:

        def read(sync_conn):
            inspector = inspect(sync_conn)
            return {
                table: {column["name"] for column in inspector.get_columns(table)}
                for table in inspector.get_table_names()
            }

        return await conn.run_sync(read)


async def _versions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return [row[0] for row in rows]


# The newest migration revision.
HEAD = "0007"

EXPECTED = {
    "signing_keys": {"kid", "key", "created_at"},
    "user_info": {"user_entity_ref", "user_info", "updated_at", "created_at"},
    VERSION_TABLE: {"version_num"},
    "refresh_results": {"key", "status", "result", "expires_at"},
    "ended_sessions": {"key", "expires_at"},
    "used_nonces": {"key", "expires_at"},
    "oauth_authorization_sessions": {
        "id",
        "client_id",
        "user_entity_ref",
        "redirect_uri",
        "scope",
        "state",
        "response_type",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "status",
        "expires_at",
    },
    "oidc_authorization_codes": {"code", "session_id", "expires_at", "used"},
    # Backstage's plugin key store table (@backstage/backend-defaults migrations/auth).
    "backstage_backend_public_keys__keys": {"id", "key", "expires_at"},
    "knex_migrations": {"id", "name", "batch", "migration_time"},
    "knex_migrations_lock": {"index", "is_locked"},
    "backstage_backend_public_keys__knex_migrations": {"id", "name", "batch", "migration_time"},
    "backstage_backend_public_keys__knex_migrations_lock": {"index", "is_locked"},
    "sessions": {"sid", "sess", "expired"},
    "offline_sessions": {
        "id",
        "user_entity_ref",
        "oidc_client_id",
        "token_hash",
        "created_at",
        "last_used_at",
        "previous_token_hash",
        "rotated_at",
    },
}


async def test_migrations_create_the_schema_and_are_idempotent(db_url: str) -> None:
    db = Database(db_url)
    try:
        for _ in range(3):
            await db.start()
        assert await _schema(db.engine) == EXPECTED
        assert await _versions(db.engine) == [HEAD]
    finally:
        await db.close()
    # A second instance on the same database finds it current.
    if ":memory:" not in db_url:
        again = Database(db_url)
        try:
            await again.start()
            assert await _versions(again.engine) == [HEAD]
        finally:
            await again.close()


_MIGRATE = """
import asyncio, pathlib, sys, time
from app.db.database import Database

url = sys.argv[1]
ready, go = map(pathlib.Path, sys.argv[2].split("|"))

async def main():
    db = Database(url)
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    try:
        await db.start()
    finally:
        await db.close()

asyncio.run(main())
"""


async def test_instances_migrating_a_fresh_database_together_all_succeed(
    shared_db_url: str,
    barrier: Callable[[int], tuple[list[str], Callable[[], None]]],
) -> None:
    # On PostgreSQL the database does not exist yet either: they race to create it too.
    starts, release = barrier(3)
    processes = [run_python(_MIGRATE, shared_db_url, start) for start in starts]
    release()
    for process in processes:
        finish(process)

    db = Database(shared_db_url, ensure_exists=False)
    try:
        assert await _schema(db.engine) == EXPECTED
        assert await _versions(db.engine) == [HEAD]
    finally:
        await db.close()


async def test_a_database_migrated_by_backstage_is_adopted(shared_db_url: str) -> None:
    # What Backstage's knex migrations leave, with data in it.
    seed = Database(shared_db_url)
    try:
        await seed.start()
        async with seed.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
            # Ours alone: Backstage has none of these tables.
            for table in ("refresh_results", "ended_sessions", "used_nonces"):
                await conn.execute(text(f"DROP TABLE {table}"))
            await conn.execute(
                text("INSERT INTO signing_keys (kid, key) VALUES ('k1', '{\"kid\":\"k1\"}')")
            )
            # Backstage's plugin key store table (backend-defaults) is adopted too.
            await conn.execute(
                text(
                    "INSERT INTO backstage_backend_public_keys__keys (id, key, expires_at) "
                    "VALUES ('p1', '{}', '2030-01-01T00:00:00.000Z')"
                )
            )
    finally:
        await seed.close()
    db = Database(shared_db_url)
    try:
        await db.start()
        assert await _versions(db.engine) == [HEAD]
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT kid FROM signing_keys"))).all() == [("k1",)]
            plugin_keys = text("SELECT id FROM backstage_backend_public_keys__keys")
            assert (await conn.execute(plugin_keys)).all() == [("p1",)]
    finally:
        await db.close()


async def test_start_fails_clearly_when_postgres_is_unreachable(closed_port: int) -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/auth")
    try:
        with pytest.raises(ServiceUnavailableError, match="Cannot prepare the auth database"):
            await db.start()
    finally:
        await db.close()


async def test_start_creates_the_sqlite_directory(tmp_path: Path) -> None:
    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'auth.sqlite'}")
        try:
            await db.start()
        finally:
            await db.close()

    await run()
    assert (tmp_path / "a" / "b" / "auth.sqlite").is_file()


async def test_ensure_exists_false_does_not_create_the_database(
    postgres_server: PostgresServer,
) -> None:
    db = Database(postgres_server.fresh_url(), ensure_exists=False)
    try:
        with pytest.raises(ServiceUnavailableError, match="does not exist"):
            await db.start()
    finally:
        await db.close()
