"""Backstage's knex bookkeeping and its ``sessions`` table, when Backstage never migrated
this database: Backstage can then start on it (app.db.knex says why).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.db.knex import record_backstage_migrations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("knex_migrations"):
        op.create_table(
            "knex_migrations",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(255), nullable=True),
            sa.Column("batch", sa.Integer(), nullable=True),
            sa.Column("migration_time", sa.DateTime(timezone=True), nullable=True),
        )
    if not inspector.has_table("knex_migrations_lock"):
        op.create_table(
            "knex_migrations_lock",
            sa.Column("index", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("is_locked", sa.Integer(), nullable=True),
        )
    if not inspector.has_table("sessions"):
        op.create_table(
            "sessions",
            sa.Column("sid", sa.String(255), primary_key=True),
            sa.Column("sess", sa.Text(), nullable=False),
            sa.Column("expired", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("sessions_sid_idx", "sessions", ["sid"])
        op.create_index("sessions_expired_idx", "sessions", ["expired"])
    record_backstage_migrations(op.get_bind())


def downgrade() -> None:
    # Backstage's tables: a downgrade of ours leaves them to Backstage.
    pass
