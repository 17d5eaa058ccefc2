"""The auth plugin's tables, as Backstage's knex migrations leave them.

Queries use these definitions; migrations (``app/db/migrations``) spell their own DDL.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
)

# Alembic's bookkeeping table; named apart from knex's ``knex_migrations``.
VERSION_TABLE = "auth_backend_migrations"

metadata = MetaData()

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(255), primary_key=True),
    # The public JWK, JSON.
    Column("key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

user_info = Table(
    "user_info",
    metadata,
    Column("user_entity_ref", String(255), primary_key=True),
    # {"claims": {...}}, JSON.
    Column("user_info", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
    Column("status", String(16), nullable=True, server_default="pending"),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

oidc_authorization_codes = Table(
    "oidc_authorization_codes",
    metadata,
    Column("code", String(255), primary_key=True),
    Column(
        "session_id",
        String(255),
        ForeignKey("oauth_authorization_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used", Boolean, nullable=True, server_default=false()),
)

offline_sessions = Table(
    "offline_sessions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("user_entity_ref", String(255), nullable=False),
    Column("oidc_client_id", String(255), nullable=True),
    # Backstage: salt.scrypt-hash; ours: "hmac-sha256:..." or "sha256:..." (app.authz).
    Column("token_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
