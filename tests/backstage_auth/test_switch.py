"""What an operator does: a real Backstage auth backend (0.31, tests/backstage_auth/index.js)
and our server on one PostgreSQL database with the same config and ``backend.baseUrl``.
Tokens verify both ways, user info is known both ways, a refresh token Backstage issued to a
CLI client is refreshed at our server, and Backstage starts again on the database afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest

from app.core.clock import SystemClock
from app.db.database import Database
from app.identity.plugin_keys import DatabasePluginKeys, DatabasePublicKeyRows
from tests.support.cli_grant import cli_grant
from tests.support.oidc_provider import free_port
from tests.support.postgres import PostgresServer
from tests.support.server import AuthServer

from .support import BackstageNode, node

pytestmark = pytest.mark.integration

SECRET = "switch-test-session-secret-of-32-characters"
CLIENT = "cli"
# A second client: a new grant replaces the user's earlier one for the same client.
OTHER_CLIENT = "mcp"
CALLBACK = "http://127.0.0.1:8055/callback"
GUEST = "user:development/guest"


class BackstageServer(BackstageNode):
    """Backstage's auth backend (index.js)."""


def _config(server: PostgresServer, database: str, base_url: str, port: int) -> dict[str, Any]:
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {
            "baseUrl": base_url,
            "listen": {"host": "127.0.0.1", "port": port},
            "database": {
                "client": "pg",
                "connection": {"host": str(server.socket_dir), "user": "postgres"},
                "plugin": {"auth": {"connection": {"database": database}}},
            },
        },
        "auth": {
            "session": {"secret": SECRET},
            "providers": {"guest": {"dangerouslyAllowOutsideDevelopment": True}},
            "staticClients": [
                {"clientId": client, "redirectUris": [CALLBACK]}
                for client in (CLIENT, OTHER_CLIENT)
            ],
            "experimentalRefreshToken": {
                "enabled": True,
                "dangerouslyDisableCatalogPresenceCheck": True,
            },
        },
    }


@pytest.fixture
def switch(
    postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[tuple[BackstageServer, AuthServer, str]]:
    node()
    database = f"switch_{uuid.uuid4().hex[:10]}"
    backstage_port = free_port()
    # One issuer for both: Backstage's own address is backend.baseUrl for both servers.
    base_url = f"http://localhost:{backstage_port}"
    config = _config(postgres_server, database, base_url, backstage_port)
    (tmp_path / "backstage").mkdir()
    (tmp_path / "ours").mkdir()
    backstage = BackstageServer(config, tmp_path / "backstage", port=backstage_port)
    ours = AuthServer(config, tmp_path / "ours")
    try:
        backstage.start(timeout=120)
        yield backstage, ours, database
    finally:
        ours.stop()
        backstage.stop()


def _api(server: AuthServer) -> str:
    return f"{server.base_url}/api/auth"


def _guest_token(server: AuthServer) -> str:
    response = httpx2.get(f"{_api(server)}/guest/refresh", timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["backstageIdentity"]["token"])


def _userinfo(server: AuthServer, token: str) -> httpx2.Response:
    return httpx2.get(
        f"{_api(server)}/v1/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _cli_refresh_token(
    server: AuthServer,
    user_token: str,
    exchange_at: AuthServer | None = None,
    client: str = CLIENT,
) -> str:
    """Backstage's own flow for a CLI client (the code exchanged at ``exchange_at`` when
    given: a code issued by one server, redeemed at the other)."""
    other = _api(exchange_at) if exchange_at else None
    token = cli_grant(_api(server), user_token, client, CALLBACK, exchange_at=other)
    return str(token["refresh_token"])


def _refresh(server: AuthServer, token: str, client: str = CLIENT) -> httpx2.Response:
    return httpx2.post(
        f"{_api(server)}/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client},
        timeout=30,
    )


def _token_hash(server: PostgresServer, database: str, token: str) -> str:
    """The stored hash of the grant ``token`` belongs to (``<grant id>.<random>``)."""
    with psycopg.connect(host=str(server.socket_dir), user="postgres", dbname=database) as conn:
        row = conn.execute(
            "SELECT token_hash FROM offline_sessions WHERE id = %s", [token.split(".")[0]]
        ).fetchone()
    return str(row[0]) if row else ""


def _kids(server: AuthServer) -> set[str]:
    keys = httpx2.get(f"{_api(server)}/.well-known/jwks.json", timeout=30).json()["keys"]
    return {str(key["kid"]) for key in keys}


def test_switching_a_running_backstage_to_our_server_and_back(
    switch: tuple[BackstageServer, AuthServer, str], postgres_server: PostgresServer
) -> None:
    backstage, ours, database = switch
    # Before the switch: a user signed in and a CLI client holding a refresh token.
    backstage_token = _guest_token(backstage)
    cli_token = _cli_refresh_token(backstage, backstage_token)
    assert ":" not in _token_hash(postgres_server, database, cli_token)  # salt.scrypt

    ours.start(timeout=60)
    our_token = _guest_token(ours)
    assert _kids(ours) == _kids(backstage)
    assert len(_kids(ours)) == 2

    # Tokens and user info, both ways.
    for server, token in ((ours, backstage_token), (backstage, our_token)):
        response = _userinfo(server, token)
        assert response.status_code == 200, response.text
        assert response.json()["claims"]["sub"] == GUEST

    # A code Backstage issued (a sign-in under way at the switch) is redeemed at ours.
    other = _cli_refresh_token(backstage, backstage_token, ours, OTHER_CLIENT)
    assert _refresh(ours, other, OTHER_CLIENT).status_code == 200

    # Backstage's CLI grant, refreshed at ours: rotated, now stored with our hash.
    refreshed = _refresh(ours, cli_token)
    assert refreshed.status_code == 200, refreshed.text
    assert _token_hash(postgres_server, database, cli_token).startswith("hmac-sha256:")
    assert _userinfo(backstage, refreshed.json()["access_token"]).status_code == 200

    # Rollback: Backstage starts again on the database our server migrated.
    ours.stop()
    backstage.stop()
    backstage.start(timeout=120)
    assert _userinfo(backstage, our_token).status_code == 200
    assert _userinfo(backstage, _guest_token(backstage)).status_code == 200
    # The cost a rollback has (docs/migrating-from-backstage.md): a refresh token we issued
    # is stored with our hash, which Backstage cannot check; that client signs in again.
    assert _refresh(backstage, refreshed.json()["refresh_token"]).status_code in (400, 401)


def _plugin_kids(server: AuthServer) -> set[str]:
    url = f"{_api(server)}/.backstage/auth/v1/jwks.json"
    return {str(key["kid"]) for key in httpx2.get(url, timeout=30).json()["keys"]}


def _publish_our_plugin_key(url: str) -> str:
    """What our server does before it signs its first plugin token (a catalog call)."""

    async def run() -> str:
        db = Database(url)
        try:
            await db.start()
            keys = DatabasePluginKeys(DatabasePublicKeyRows(db.engine), SystemClock())
            return (await keys.signing_key()).kid
        finally:
            await db.close()

    return asyncio.run(run())


def test_backstage_starts_on_a_database_we_created_and_serves_our_plugin_keys(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """The other order of a switch: our server made the database (no Backstage before it),
    then a Backstage instance joins. Its plugin key store (backend-defaults' knex migration
    in backstage_backend_public_keys__knex_migrations) finds its table made and recorded,
    and its JWKS of plugin keys publishes ours, so that a plugin token we signed verifies
    whichever instance the caller asks."""
    node()
    database = f"ours_first_{uuid.uuid4().hex[:10]}"
    port = free_port()
    config = _config(postgres_server, database, f"http://localhost:{port}", port)
    (tmp_path / "backstage").mkdir()
    (tmp_path / "ours").mkdir()
    ours = AuthServer(config, tmp_path / "ours")
    backstage = BackstageServer(config, tmp_path / "backstage", port=port)
    try:
        ours.start(timeout=60)
        kid = _publish_our_plugin_key(postgres_server.url(database))
        assert kid in _plugin_kids(ours)
        ours.stop()
        backstage.start(timeout=120)
        assert kid in _plugin_kids(backstage)
        # And Backstage's users keep working on it.
        assert _userinfo(backstage, _guest_token(backstage)).status_code == 200
    finally:
        ours.stop()
        backstage.stop()
