"""The auth plugin's tables, as Backstage's knex migrations leave them.

Queries use these definitions; migrations (``app/db/migrations``) spell their own DDL.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects import postgresql

# Alembic's bookkeeping table; named apart from knex's ``knex_migrations``.
VERSION_TABLE = "auth_backend_migrations"

metadata = MetaData()

# knex's timestamp columns on PostgreSQL: ``timestamptz(0)`` where a Backstage migration
# asks for precision 0, else ``timestamptz``; knex.fn.now() is CURRENT_TIMESTAMP.
SECONDS = DateTime(timezone=True).with_variant(
    postgresql.TIMESTAMP(timezone=True, precision=0), "postgresql"
)
NOW = text("CURRENT_TIMESTAMP")

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(255), primary_key=True),
    # The public JWK, JSON.
    Column("key", Text, nullable=False),
    Column("created_at", SECONDS, nullable=False, server_default=NOW),
)

user_info = Table(
    "user_info",
    metadata,
    Column("user_entity_ref", String(255), primary_key=True),
    # {"claims": {...}}, JSON.
    Column("user_info", Text, nullable=False),
    # Backstage renamed its ``exp`` column: no default.
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

refresh_results = Table(
    "refresh_results",
    metadata,
    # sha256 of provider, env, refresh token and scope: never the token itself.
    Column("key", String(64), primary_key=True),
    Column("status", String(8), nullable=False),
    # The sealed (JWE) result once done.
    Column("result", Text, nullable=True),
    # Epoch seconds: the claim's deadline while pending, the grace window once done.
    Column("expires_at", Float, nullable=False),
)

# Sessions ended by logout: a copy of the cookie is refused until the session's own end.
ended_sessions = Table(
    "ended_sessions",
    metadata,
    # sha256 of the session id sealed in the cookie.
    Column("key", String(64), primary_key=True),
    # Epoch seconds: when the session would have expired anyway.
    Column("expires_at", Float, nullable=False),
)

# State nonces of completed callbacks: a replayed callback is refused.
used_nonces = Table(
    "used_nonces",
    metadata,
    # sha256 of the state's nonce.
    Column("key", String(64), primary_key=True),
    # Epoch seconds: until when a replay is refused.
    Column("expires_at", Float, nullable=False),
)

AUTHORIZATION_STATUSES = ("pending", "approved", "rejected", "expired")

# Backstage as an OAuth authorization server: Backstage's own tables and columns
# (migrations 20250909120000 to 20261030120000 of plugin-auth-backend), so that a
# database shared with Backstage holds one set of grants. Ours adds two nullable columns
# to offline_sessions for refresh-token reuse detection; Backstage ignores them.
oauth_authorization_sessions = Table(
    "oauth_authorization_sessions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("client_id", String(255), nullable=False),
    Column("user_entity_ref", String(255), nullable=True),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=True),
    Column("state", Text, nullable=True),
    Column("response_type", String(255), nullable=False),
    Column("code_challenge", String(255), nullable=True),
    Column("code_challenge_method", String(255), nullable=True),
    Column("nonce", String(255), nullable=True),
    # knex's enum: text with a named CHECK.
    Column("status", Text, nullable=True, server_default="pending"),
    Column("expires_at", SECONDS, nullable=False),
    CheckConstraint(
        f"status IN ({', '.join(repr(s) for s in AUTHORIZATION_STATUSES)})",
        name="oauth_authorization_sessions_status_check",
    ),
)

oidc_authorization_codes = Table(
    "oidc_authorization_codes",
    metadata,
    Column("code", String(255), primary_key=True),
    Column("session_id", String(255), nullable=False),
    Column("expires_at", SECONDS, nullable=False),
    Column("used", Boolean, nullable=True, server_default=false()),
    ForeignKeyConstraint(
        ["session_id"],
        ["oauth_authorization_sessions.id"],
        ondelete="CASCADE",
        name="oidc_authorization_codes_session_id_foreign",
    ),
)

offline_sessions = Table(
    "offline_sessions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("user_entity_ref", String(255), nullable=False),
    Column("oidc_client_id", String(255), nullable=True),
    # Backstage: salt.scrypt-hash; ours: "hmac-sha256:..." or "sha256:..." (app.authz).
    Column("token_hash", Text, nullable=False),
    Column("created_at", SECONDS, nullable=False, server_default=NOW),
    Column("last_used_at", SECONDS, nullable=False, server_default=NOW),
    # Ours: the hash the last rotation replaced and when; a second use of it is reuse.
    Column("previous_token_hash", Text, nullable=True),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
)

Index(
    "oauth_authorization_sessions_client_id_user_entity_ref_index",
    oauth_authorization_sessions.c.client_id,
    oauth_authorization_sessions.c.user_entity_ref,
)
Index(
    "oauth_authorization_sessions_status_expires_at_index",
    oauth_authorization_sessions.c.status,
    oauth_authorization_sessions.c.expires_at,
)
Index("offline_sessions_user_idx", offline_sessions.c.user_entity_ref)
Index("offline_sessions_oidc_client_idx", offline_sessions.c.oidc_client_id)
Index("offline_sessions_created_idx", offline_sessions.c.created_at)
Index("offline_sessions_last_used_idx", offline_sessions.c.last_used_at)

# Backstage's plugin key store (@backstage/backend-defaults DatabaseKeyStore): the public
# keys of plugin tokens, shared with Backstage's instances on the same database.
plugin_public_keys = Table(
    "backstage_backend_public_keys__keys",
    metadata,
    Column("id", String(255), primary_key=True),
    # The public JWK, JSON.
    Column("key", Text, nullable=False),
    # An ISO 8601 string (Date.toISOString), compared client side.
    Column("expires_at", String(255), nullable=False),
)


def _knex_bookkeeping(table: str) -> tuple[Table, Table]:
    """knex's records of one migrations folder (``table``) and its lock (``<table>_lock``),
    as knex creates them."""
    records = Table(
        table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(255), nullable=True),
        Column("batch", Integer, nullable=True),
        Column("migration_time", DateTime(timezone=True), nullable=True),
    )
    lock = Table(
        f"{table}_lock",
        metadata,
        Column("index", Integer, primary_key=True, autoincrement=True),
        Column("is_locked", Integer, nullable=True),
    )
    return records, lock


# Backstage's own bookkeeping, so that Backstage starts on a database we created (a
# rollback): knex's migration tables, holding the names of the auth plugin's migrations
# whose result the tables above are (app.db.knex), and the express-session table that
# its 20230428155633_sessions migration made (unused by 0.31, but a later Backstage
# migration may alter or drop it).
knex_migrations, knex_migrations_lock = _knex_bookkeeping("knex_migrations")
# The same for Backstage's plugin key store (backend-defaults runs its migrations/auth
# folder with this table name), so that Backstage's DatabaseKeyStore starts on a database
# where we created backstage_backend_public_keys__keys.
plugin_keys_knex_migrations, plugin_keys_knex_migrations_lock = _knex_bookkeeping(
    "backstage_backend_public_keys__knex_migrations"
)

sessions = Table(
    "sessions",
    metadata,
    Column("sid", String(255), primary_key=True),
    Column("sess", Text, nullable=False),
    Column("expired", DateTime(timezone=True), nullable=False),
)

Index("sessions_sid_idx", sessions.c.sid)
Index("sessions_expired_idx", sessions.c.expired)
