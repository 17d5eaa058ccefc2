"""ended_sessions and used_nonces: logout and callbacks that hold on every instance.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        # sha256 of the session id sealed in the cookie.
        sa.Column("key", sa.String(64), primary_key=True),
        # Epoch seconds: when the session would have expired anyway.
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "used_nonces",
        # sha256 of the state's nonce.
        sa.Column("key", sa.String(64), primary_key=True),
        # Epoch seconds: until when a replay is refused.
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("used_nonces")
    op.drop_table("ended_sessions")
