"""Alembic environment: migrates over the connection ``app.db.migrate`` already holds
(and has locked), inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from app.db.schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations with app.db.migrate.migrate(), not the alembic CLI")

context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
