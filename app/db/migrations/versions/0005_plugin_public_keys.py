"""backstage_backend_public_keys__keys: the public halves of our plugin-token keys, in the
table of Backstage's plugin key store (``@backstage/backend-defaults``
migrations/auth/20240327104803_public_keys). A table Backstage already created on a
shared database is adopted.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "backstage_backend_public_keys__keys"


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table(TABLE):
        op.create_table(
            TABLE,
            sa.Column("id", sa.String(255), primary_key=True),
            # The public JWK, JSON.
            sa.Column("key", sa.Text(), nullable=False),
            # An ISO string, compared client side (as Backstage stores it).
            sa.Column("expires_at", sa.String(255), nullable=False),
        )


def downgrade() -> None:
    op.drop_table(TABLE)
