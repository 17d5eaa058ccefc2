"""A throwaway PostgreSQL 16 server from the ``pgserver`` wheel (no root, no apt).

pgserver runs PostgreSQL as a system user of its own when started as root. Data lives in
its own mkdtemp folder, not pytest's temp folder: pytest resets that to 0700 at each run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL


class PostgresServer:
    """A running server; ``url(name)`` points at database ``name`` on it."""

    def __init__(self, socket_dir: Path, startup_seconds: float) -> None:
        self.socket_dir = socket_dir
        self.startup_seconds = startup_seconds

    def url(self, database: str = "postgres") -> str:
        return URL.create(
            "postgresql+psycopg",
            username="postgres",
            database=database,
            query={"host": str(self.socket_dir)},
        ).render_as_string(hide_password=False)

    def fresh_url(self) -> str:
        """A database that does not exist yet (``Database.start`` creates it)."""
        return self.url(f"test_{uuid.uuid4().hex[:12]}")


def _disable_durability(socket_dir: Path) -> None:
    # Throwaway data: no fsync, so test databases and the shutdown checkpoint are cheap.
    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to
        # /tmp/runtime-<uid> for pgserver's lock file).
        warnings.simplefilter("ignore")
        import pgserver

    base = Path(tempfile.mkdtemp(prefix="auth-backend-pg-"))
    started = time.monotonic()
    server = pgserver.get_server(base / "data", cleanup_mode="delete")  # type: ignore[attr-defined]
    elapsed = time.monotonic() - started
    try:
        socket_dir = Path(server.get_postmaster_info().socket_dir)
        _disable_durability(socket_dir)
        yield PostgresServer(socket_dir, elapsed)
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
