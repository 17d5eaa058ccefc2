"""Alembic migrations of the auth plugin's schema; run by ``app.db.migrate.migrate``."""
