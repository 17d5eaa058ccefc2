"""Several instances sharing one PostgreSQL database (issue 3), as real processes.

Each process keeps its private signing key in memory and publishes the public half in the
shared ``signing_keys`` table, as Backstage does; any instance verifies any token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.postgres import PostgresServer
from tests.support.server import AuthServer, two_instances

pytestmark = pytest.mark.integration


def _config(server: PostgresServer, database: str) -> dict[str, Any]:
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {
            "baseUrl": "http://localhost:7007",
            "database": {
                "client": "pg",
                "connection": {
                    "host": str(server.socket_dir),
                    "user": "postgres",
                    "database": database,
                },
                "plugin": {"auth": {"connection": {"database": database}}},
            },
        },
        "auth": {"providers": {"guest": {}}},
    }


def _token(server: AuthServer) -> str:
    response = httpx2.get(f"{server.base_url}/api/auth/guest/refresh", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["backstageIdentity"]["token"])


def _verify(server: AuthServer, token: str) -> dict[str, Any]:
    keys = httpx2.get(f"{server.base_url}/api/auth/.well-known/jwks.json").json()
    return dict(jwt.decode(token, KeySet.import_key_set(keys), algorithms=["ES256"]).claims)


@pytest.fixture
def instances(
    postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[tuple[AuthServer, AuthServer, str]]:
    database = f"auth_{uuid.uuid4().hex[:10]}"
    with two_instances(_config(postgres_server, database), tmp_path) as (a, b):
        yield a, b, database


def test_tokens_verify_across_instances_and_restarts(
    instances: tuple[AuthServer, AuthServer, str], postgres_server: PostgresServer
) -> None:
    a, b, database = instances
    from_a, from_b = _token(a), _token(b)
    assert _verify(b, from_a)["sub"] == "user:development/guest"
    assert _verify(a, from_b)["sub"] == "user:development/guest"
    # Both processes generated their own key; both are published by both.
    kids = {
        k["kid"] for k in httpx2.get(f"{a.base_url}/api/auth/.well-known/jwks.json").json()["keys"]
    }
    assert len(kids) == 2
    # The user info written by one instance is served by the other.
    info = httpx2.get(
        f"{b.base_url}/api/auth/v1/userinfo", headers={"Authorization": f"Bearer {from_a}"}
    )
    assert info.json() == {
        "claims": {"sub": "user:development/guest", "ent": ["user:development/guest"]}
    }
    # A restart loses the private key, not the published public one.
    a.stop()
    a.start()
    assert _verify(a, from_a)["sub"] == "user:development/guest"
    assert _verify(b, from_a)["sub"] == "user:development/guest"
    with psycopg.connect(
        host=str(postgres_server.socket_dir), user="postgres", dbname=database
    ) as conn:
        (migrations,) = conn.execute("SELECT count(*) FROM auth_backend_migrations").fetchone() or (
            0,
        )
    assert migrations == 1


def test_an_unreachable_database_is_a_clear_503_and_not_ready(
    instances: tuple[AuthServer, AuthServer, str], postgres_server: PostgresServer
) -> None:
    a, _, database = instances
    _token(a)
    admin = psycopg.connect(
        host=str(postgres_server.socket_dir), user="postgres", dbname="postgres", autocommit=True
    )
    try:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        # Whatever needs the key store answers a clear 503 (a token whose key is already
        # published and whose user info is unchanged still needs no database).
        refused = httpx2.get(f"{a.base_url}/api/auth/.well-known/jwks.json", timeout=30)
        assert refused.status_code == 503
        assert refused.json()["error"]["name"] == "ServiceUnavailableError"
        assert refused.json()["error"]["message"].startswith("Key store unavailable")
        ready = httpx2.get(f"{a.base_url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["keyStore"].startswith("Key store unavailable")
        assert httpx2.get(f"{a.base_url}/healthz").status_code == 200
    finally:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        admin.close()
    # It recovers on its own.
    assert httpx2.get(f"{a.base_url}/readyz", timeout=30).status_code == 200
    _token(a)
