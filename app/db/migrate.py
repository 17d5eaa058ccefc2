"""Bring the database to the current schema at startup, safely from several instances.

Instances that start together serialize on a lock held for the whole upgrade, in the same
transaction as the DDL: a PostgreSQL advisory transaction lock, or SQLite's exclusive
write lock. The second one then finds the schema current and does nothing.

Alembic (~0.1 s of imports at every start) runs only when there is something to migrate
from: a database already at the head revision is left alone, and an empty one gets the
head schema (``app.db.schema``) and the head revision at once, as alembic's "create_all,
then stamp" recipe does. tests/db/test_migrate.py checks that this schema is the one the
migrations build, and that ``HEAD_REVISION`` is alembic's head.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import create_database_engine, is_memory_sqlite
from app.db.knex import KNEX_SETS, record_backstage_migrations
from app.db.schema import VERSION_TABLE, metadata

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key (bigint) of this schema's migrations: b"bs-auth\x01".
MIGRATION_LOCK_KEY = 0x62732D6175746801
MAINTENANCE_DATABASE = "postgres"
# The newest revision in migrations/versions; a test checks it against alembic's head.
HEAD_REVISION = "0007"

# Alembic's version table, as alembic defines it (DefaultImpl.version_table_impl).
_version_table = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
_OUR_TABLES = frozenset({*metadata.tables, VERSION_TABLE})


def _alembic_config(connection: Connection) -> Config:
    # alembic (~0.1 s of imports) only where it runs: not in processes that never migrate.
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolation: a literal "%" must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    """Runs under the migration lock, in its transaction."""
    tables = set(inspect(connection).get_table_names()) & _OUR_TABLES
    if not tables:
        # A new database: the head schema, stamped with the head revision.
        metadata.create_all(connection, checkfirst=False)
        _version_table.create(connection, checkfirst=False)
        connection.execute(_version_table.insert().values(version_num=HEAD_REVISION))
        for migrations in KNEX_SETS:
            record_backstage_migrations(connection, migrations)
        return
    if tables == _OUR_TABLES and connection.execute(
        select(_version_table.c.version_num)
    ).scalars().all() == [HEAD_REVISION]:
        return
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to the latest revision; a no-op when the schema is current.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or migrated.
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        async with engine.begin() as conn:
            # Released at commit or rollback, with the DDL.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            await conn.run_sync(_upgrade)
    elif dialect == "sqlite":
        async with engine.connect() as conn:
            await _migrate_sqlite(conn)
    else:
        raise ValueError(f"unsupported database dialect '{dialect}'")
    log.info("database schema is current (%s)", dialect)


async def _migrate_sqlite(conn: AsyncConnection) -> None:
    # The driver must not issue its own BEGIN: we open the transaction, exclusively.
    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
    await conn.exec_driver_sql("BEGIN EXCLUSIVE")
    try:
        await conn.run_sync(_upgrade)
    except BaseException:
        await conn.exec_driver_sql("ROLLBACK")
        raise
    await conn.exec_driver_sql("COMMIT")


async def ensure_database_exists(engine: AsyncEngine) -> None:
    """Create the PostgreSQL database, or the SQLite file's directory, when missing.

    Backstage creates each plugin's database the same way (``ensureExists``), through the
    ``postgres`` maintenance database; instances racing to create it all succeed.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the server cannot be reached, or refuses.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not is_memory_sqlite(url) and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return
    name = url.database
    if not name or name == MAINTENANCE_DATABASE:
        return
    from psycopg import errors as pg_errors

    admin = create_database_engine(
        url.set(database=MAINTENANCE_DATABASE).render_as_string(hide_password=False)
    )
    try:
        async with admin.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found:
                return
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            try:
                await conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
                log.info("created database '%s'", name)
            except DBAPIError as exc:
                # Another instance created it first.
                if not isinstance(
                    exc.orig, pg_errors.DuplicateDatabase | pg_errors.UniqueViolation
                ):
                    raise
    finally:
        await admin.dispose()
