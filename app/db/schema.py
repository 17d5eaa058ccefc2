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
