"""The auth plugin's own database: Backstage's ``backend.database`` config, the async
SQLAlchemy engine, the schema and its migrations.

``Database`` (``app.db.database``) bundles them for the application: build it from the
config at startup (no I/O), ``await start()`` in the lifespan (create the database if
missing, migrate), ``await close()`` on shutdown.
"""
