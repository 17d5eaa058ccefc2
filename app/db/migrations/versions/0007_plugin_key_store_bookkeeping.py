"""Backstage's knex bookkeeping for its plugin key store, when Backstage never migrated it
here: Backstage's DatabaseKeyStore (backend-defaults) can then start on the
``backstage_backend_public_keys__keys`` table that 0005 created (app.db.knex says why).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.knex import PLUGIN_KEY_STORE, record_backstage_migrations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RECORDS = "backstage_backend_public_keys__knex_migrations"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(RECORDS):
        op.create_table(
            RECORDS,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(255), nullable=True),
            sa.Column("batch", sa.Integer(), nullable=True),
            sa.Column("migration_time", sa.DateTime(timezone=True), nullable=True),
        )
    if not inspector.has_table(f"{RECORDS}_lock"):
        op.create_table(
            f"{RECORDS}_lock",
            sa.Column("index", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("is_locked", sa.Integer(), nullable=True),
        )
    record_backstage_migrations(op.get_bind(), PLUGIN_KEY_STORE)


def downgrade() -> None:
    # Backstage's tables: a downgrade of ours leaves them to Backstage.
    pass
