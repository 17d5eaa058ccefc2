"""The auth plugin's tables, as Backstage's knex migrations leave them.

Queries use these definitions; migrations (``app/db/migrations``) spell their own DDL.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text, func

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
