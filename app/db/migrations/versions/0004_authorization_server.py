"""The authorization server's tables, as Backstage's auth plugin migrations leave them.

oauth_authorization_sessions, oidc_authorization_codes and offline_sessions (Backstage's
oidc_clients is gone since its 20261030120000_remove_dcr). Tables Backstage already
created are adopted; offline_sessions gains our two nullable reuse-detection columns.

Revision ID: 0004
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# knex on PostgreSQL: Backstage's timestamps here are timestamptz(0); knex.fn.now().
_SECONDS = sa.DateTime(timezone=True).with_variant(
    postgresql.TIMESTAMP(timezone=True, precision=0), "postgresql"
)


def _timestamp(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        _SECONDS,
        nullable=nullable,
        server_default=sa.text("CURRENT_TIMESTAMP") if now else None,
    )


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("oauth_authorization_sessions"):
        op.create_table(
            "oauth_authorization_sessions",
            sa.Column("id", sa.String(255), primary_key=True),
            sa.Column("client_id", sa.String(255), nullable=False),
            sa.Column("user_entity_ref", sa.String(255), nullable=True),
            sa.Column("redirect_uri", sa.Text(), nullable=False),
            sa.Column("scope", sa.Text(), nullable=True),
            sa.Column("state", sa.Text(), nullable=True),
            sa.Column("response_type", sa.String(255), nullable=False),
            sa.Column("code_challenge", sa.String(255), nullable=True),
            sa.Column("code_challenge_method", sa.String(255), nullable=True),
            sa.Column("nonce", sa.String(255), nullable=True),
            # knex's enum: text with a named CHECK.
            sa.Column("status", sa.Text(), nullable=True, server_default="pending"),
            _timestamp("expires_at"),
            sa.CheckConstraint(
                "status IN ('pending', 'approved', 'rejected', 'expired')",
                name="oauth_authorization_sessions_status_check",
            ),
        )
        op.create_index(
            "oauth_authorization_sessions_client_id_user_entity_ref_index",
            "oauth_authorization_sessions",
            ["client_id", "user_entity_ref"],
        )
        op.create_index(
            "oauth_authorization_sessions_status_expires_at_index",
            "oauth_authorization_sessions",
            ["status", "expires_at"],
        )
    if not inspector.has_table("oidc_authorization_codes"):
        op.create_table(
            "oidc_authorization_codes",
            sa.Column("code", sa.String(255), primary_key=True),
            sa.Column("session_id", sa.String(255), nullable=False),
            _timestamp("expires_at"),
            sa.Column("used", sa.Boolean(), nullable=True, server_default=sa.false()),
            sa.ForeignKeyConstraint(
                ["session_id"],
                ["oauth_authorization_sessions.id"],
                ondelete="CASCADE",
                name="oidc_authorization_codes_session_id_foreign",
            ),
        )
    if not inspector.has_table("offline_sessions"):
        op.create_table(
            "offline_sessions",
            sa.Column("id", sa.String(255), primary_key=True),
            sa.Column("user_entity_ref", sa.String(255), nullable=False),
            sa.Column("oidc_client_id", sa.String(255), nullable=True),
            sa.Column("token_hash", sa.Text(), nullable=False),
            _timestamp("created_at", now=True),
            _timestamp("last_used_at", now=True),
            sa.Column("previous_token_hash", sa.Text(), nullable=True),
            sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        )
        for column in ("user_entity_ref", "oidc_client_id", "created_at", "last_used_at"):
            short = {"user_entity_ref": "user", "oidc_client_id": "oidc_client"}.get(
                column, column.removesuffix("_at")
            )
            op.create_index(f"offline_sessions_{short}_idx", "offline_sessions", [column])
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("offline_sessions")}
    if "previous_token_hash" not in columns:
        op.add_column(
            "offline_sessions", sa.Column("previous_token_hash", sa.Text(), nullable=True)
        )
    if "rotated_at" not in columns:
        # Ours: full precision (the reuse grace is measured in seconds).
        op.add_column(
            "offline_sessions", sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    op.drop_table("offline_sessions")
    op.drop_table("oidc_authorization_codes")
    op.drop_table("oauth_authorization_sessions")
