"""refresh_results: one upstream refresh per session across instances.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_results",
        # sha256 of provider, env, refresh token and scope: never the token itself.
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(8), nullable=False),
        # The sealed (JWE) result once done.
        sa.Column("result", sa.Text(), nullable=True),
        # Epoch seconds: the claim's deadline while pending, the grace window once done.
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("refresh_results")
