"""The real Backstage auth backend from npm (tests/backstage_auth/package-lock.json,
installed by ``make tests/backstage_auth/node_modules/.installed``): its knex migrations,
and the schema they leave on PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest

from tests.support.server import AuthServer

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
PLUGIN = NODE_MODULES / "@backstage" / "plugin-auth-backend"
# The auth plugin's tables that Backstage 0.31 and our server share.
SHARED_TABLES = (
    "signing_keys",
    "user_info",
    "oauth_authorization_sessions",
    "oidc_authorization_codes",
    "offline_sessions",
)


def node() -> str:
    path = shutil.which("node")
    if path is None or not PLUGIN.is_dir():
        pytest.fail(
            "node and tests/backstage_auth/node_modules are needed: "
            "make tests/backstage_auth/node_modules/.installed"
        )
    return path


class BackstageNode(AuthServer):
    """A Backstage backend (``script`` in this folder) run by node on the given config."""

    script = "index.js"

    def command(self) -> list[str]:
        return [node(), str(HERE / self.script), "--config", str(self.config_path)]

    def launch(self, *, cwd: Path = HERE, env: dict[str, str] | None = None) -> None:
        super().launch(cwd=cwd, env=env)

    def wait_ready(self, timeout: float = 120.0) -> None:
        # Backstage answers (503) before its plugins are up: wait for a 200.
        deadline = time.monotonic() + timeout
        super().wait_ready(timeout)
        readiness = f"{self.base_url}/.backstage/health/v1/readiness"
        while time.monotonic() < deadline:
            if httpx2.get(readiness, timeout=5).status_code == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(f"Backstage did not become ready:\n{self.output}")


def knex_migrate(
    socket_dir: Path, database: str, action: str = "latest", migrations: str = "auth"
) -> dict[str, Any]:
    """Backstage's migrations, run as the plugin runs them at start-up (``plugin-keys``:
    backend-defaults' plugin key store, as its DatabaseKeyStore runs them)."""
    done = subprocess.run(
        [node(), str(HERE / "knex_migrate.js"), str(socket_dir), database, action, migrations],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout) if action == "latest" else {}
    return result


_COLUMNS = """
SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,
       column_default, datetime_precision
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(%s)
ORDER BY table_name, column_name
"""
_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY tablename, indexname
"""
_CONSTRAINTS = """
SELECT rel.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = rel.relnamespace
WHERE ns.nspname = 'public' AND rel.relname = ANY(%s) ORDER BY rel.relname, con.conname
"""


def schema(socket_dir: Path, database: str, tables: tuple[str, ...]) -> dict[str, Any]:
    """Columns (type, length, nullability, default, precision), indexes and constraints."""
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname=database) as conn:
        return {
            "columns": conn.execute(_COLUMNS, [list(tables)]).fetchall(),
            "indexes": conn.execute(_INDEXES, [list(tables)]).fetchall(),
            "constraints": conn.execute(_CONSTRAINTS, [list(tables)]).fetchall(),
        }


def create_database(socket_dir: Path, database: str) -> None:
    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
