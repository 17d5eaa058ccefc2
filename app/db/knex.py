"""Backstage's knex bookkeeping in a database we created, so that Backstage can start on it
(a rollback, or both side by side during a switch).

knex runs every migration file of the auth plugin whose name is not in
``knex_migrations``; on our tables, the first one (``createTable('signing_keys')``) would
fail. Our migrations leave the tables exactly as these migrations of
``@backstage/plugin-auth-backend`` 0.31 do (tests/backstage_auth/test_migrations.py runs
them), so they are recorded as done, in one batch, as knex records them. A newer Backstage
then runs only its newer migrations. A database Backstage migrated keeps its own records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection

from app.db.schema import (
    knex_migrations,
    knex_migrations_lock,
    plugin_keys_knex_migrations,
    plugin_keys_knex_migrations_lock,
)

BACKSTAGE_MIGRATIONS = (
    "20200619125845_init.js",
    "20210326100300_timestamptz.js",
    "20220321100910_timestamptz_again.js",
    "20220522100910_key_field_size.js",
    "20230428155633_sessions.js",
    "20240510120825_user_info.js",
    "20250707164600_user_created_at.js",
    "20250909120000_oidc_client_registration.js",
    "20251020000000_offline_sessions.js",
    "20251118120000_oauth_state_text.js",
    "20251217120000_drop_oidc_clients_fk.js",
    "20260317120000_drop_offline_sessions_fk.js",
    "20261030120000_remove_dcr.js",
)


@dataclass(frozen=True)
class KnexMigrationSet:
    """One folder of knex migrations and the table knex records them in."""

    records: Table
    lock: Table
    names: tuple[str, ...]


AUTH_PLUGIN = KnexMigrationSet(knex_migrations, knex_migrations_lock, BACKSTAGE_MIGRATIONS)
# @backstage/backend-defaults migrations/auth, run by its DatabaseKeyStore.
PLUGIN_KEY_STORE = KnexMigrationSet(
    plugin_keys_knex_migrations,
    plugin_keys_knex_migrations_lock,
    ("20240327104803_public_keys.js",),
)
# Every set whose tables our head schema holds (a new database gets all their records).
KNEX_SETS = (AUTH_PLUGIN, PLUGIN_KEY_STORE)


def record_backstage_migrations(
    connection: Connection, migrations: KnexMigrationSet = AUTH_PLUGIN
) -> None:
    """Record Backstage's migrations as done, unless knex already recorded any."""
    if connection.execute(select(func.count()).select_from(migrations.records)).scalar_one():
        return
    now = datetime.now(UTC)
    connection.execute(
        insert(migrations.records),
        [{"name": name, "batch": 1, "migration_time": now} for name in migrations.names],
    )
    if not connection.execute(select(func.count()).select_from(migrations.lock)).scalar_one():
        connection.execute(insert(migrations.lock).values(is_locked=0))
