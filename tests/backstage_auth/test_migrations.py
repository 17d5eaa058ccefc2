"""Our migrations and Backstage's own (knex, from the pinned npm package) on one
PostgreSQL, in both orders: each finds the tables the other left and takes them as they
are, and the tables we share end up exactly as Backstage's migrations leave them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app.db.database import Database
from tests.support.postgres import PostgresServer

from .support import SHARED_TABLES, create_database, knex_migrate, schema

# Backstage's bookkeeping (knex) and its express-session table, which 0.31 no longer uses
# but a later Backstage migration may alter or drop.
BACKSTAGE_ONLY = ("knex_migrations", "knex_migrations_lock", "sessions")
# Ours: nullable, for refresh-token reuse detection; Backstage never reads them.
OUR_COLUMNS = {("offline_sessions", "previous_token_hash"), ("offline_sessions", "rotated_at")}


def _ours(server: PostgresServer, database: str) -> None:
    async def run() -> None:
        db = Database(server.url(database))
        try:
            await db.start()
        finally:
            await db.close()

    asyncio.run(run())


def _without_our_columns(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {
        **snapshot,
        "columns": [c for c in snapshot["columns"] if (c[0], c[1]) not in OUR_COLUMNS],
    }


def _backstage_only(server: PostgresServer) -> tuple[str, dict[str, Any]]:
    database = f"knex_{uuid.uuid4().hex[:10]}"
    create_database(server.socket_dir, database)
    ran = knex_migrate(server.socket_dir, database)["ran"]
    assert len(ran) == 13, ran
    return database, schema(server.socket_dir, database, SHARED_TABLES + BACKSTAGE_ONLY)


def test_backstage_then_ours_then_backstage(postgres_server: PostgresServer) -> None:
    database, backstage = _backstage_only(postgres_server)
    _ours(postgres_server, database)
    after_ours = schema(postgres_server.socket_dir, database, SHARED_TABLES + BACKSTAGE_ONLY)
    assert {(c[0], c[1]) for c in after_ours["columns"]} >= OUR_COLUMNS
    assert _without_our_columns(after_ours) == backstage
    # Backstage starts again: nothing left to migrate, nothing in its way.
    assert knex_migrate(postgres_server.socket_dir, database)["ran"] == []
    _ours(postgres_server, database)


def test_ours_then_backstage_then_ours(postgres_server: PostgresServer) -> None:
    _, backstage = _backstage_only(postgres_server)
    database = f"ours_{uuid.uuid4().hex[:10]}"
    _ours(postgres_server, database)
    ours = schema(postgres_server.socket_dir, database, SHARED_TABLES + BACKSTAGE_ONLY)
    assert _without_our_columns(ours) == backstage
    # Backstage finds its migrations done (knex_migrations) and its tables as it left them.
    assert knex_migrate(postgres_server.socket_dir, database)["ran"] == []
    _ours(postgres_server, database)
    assert schema(postgres_server.socket_dir, database, SHARED_TABLES + BACKSTAGE_ONLY) == ours


# backend-defaults' plugin key store: its table and knex's records of it.
KEY_STORE = (
    "backstage_backend_public_keys__keys",
    "backstage_backend_public_keys__knex_migrations",
    "backstage_backend_public_keys__knex_migrations_lock",
)


def test_the_plugin_key_store_in_both_orders(postgres_server: PostgresServer) -> None:
    socket = postgres_server.socket_dir
    theirs = f"keys_{uuid.uuid4().hex[:10]}"
    create_database(socket, theirs)
    ran = knex_migrate(socket, theirs, migrations="plugin-keys")["ran"]
    assert ran == ["20240327104803_public_keys.js"]
    backstage = schema(socket, theirs, KEY_STORE)
    # Ours adopts Backstage's table and records.
    _ours(postgres_server, theirs)
    assert schema(socket, theirs, KEY_STORE) == backstage
    # Ours first: Backstage's DatabaseKeyStore finds nothing to migrate and the same schema.
    ours = f"ours_{uuid.uuid4().hex[:10]}"
    _ours(postgres_server, ours)
    assert knex_migrate(socket, ours, migrations="plugin-keys")["ran"] == []
    assert schema(socket, ours, KEY_STORE) == backstage
