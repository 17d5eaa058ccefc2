"""signing_keys and user_info, as Backstage's auth plugin migrations leave them.

A database that Backstage's auth plugin already migrated (knex) has both tables: they
are adopted as they are, so keys and user info carry over.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# knex on PostgreSQL: timestamptz(0) where Backstage asks for precision 0; knex.fn.now().
_SECONDS = sa.DateTime(timezone=True).with_variant(
    postgresql.TIMESTAMP(timezone=True, precision=0), "postgresql"
)
_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("signing_keys"):
        op.create_table(
            "signing_keys",
            sa.Column("kid", sa.String(255), primary_key=True),
            sa.Column("key", sa.Text(), nullable=False),
            sa.Column("created_at", _SECONDS, nullable=False, server_default=_NOW),
        )
    if not inspector.has_table("user_info"):
        op.create_table(
            "user_info",
            sa.Column("user_entity_ref", sa.String(255), primary_key=True),
            sa.Column("user_info", sa.Text(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column(
                "created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW
            ),
        )


def downgrade() -> None:
    op.drop_table("user_info")
    op.drop_table("signing_keys")
