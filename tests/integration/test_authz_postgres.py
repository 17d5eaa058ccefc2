"""The authorization server on PostgreSQL with two instances (real processes): a refresh
token rotated on one is refused on the other, and concurrent refreshes of one token
leave exactly one live token. (That alone does not show the row lock: same-client
refreshes all succeed without it too, the last write winning; test_authz_row_lock.py
does.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest

from app.authz.refresh_tokens import TokenHasher, derive_key
from tests.support.cli_grant import cli_grant
from tests.support.postgres import PostgresServer
from tests.support.server import AuthServer, two_instances

pytestmark = pytest.mark.integration

SECRET = "two-instance-session-secret"
CALLBACK = "http://127.0.0.1:8055/callback"


def _config(server: PostgresServer, database: str) -> dict[str, Any]:
    connection = {"host": str(server.socket_dir), "user": "postgres", "database": database}
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {
            "baseUrl": "http://localhost:7007",
            "database": {
                "client": "pg",
                "connection": connection,
                "plugin": {"auth": {"connection": {"database": database}}},
            },
        },
        "auth": {
            "session": {"secret": SECRET},
            "providers": {"guest": {}},
            "staticClients": [{"clientId": "cli", "redirectUris": [CALLBACK]}],
            "experimentalRefreshToken": {
                "enabled": True,
                "dangerouslyDisableCatalogPresenceCheck": True,
            },
        },
    }


@pytest.fixture
def pair(
    postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[tuple[AuthServer, AuthServer, str]]:
    database = f"authz_{uuid.uuid4().hex[:10]}"
    with two_instances(_config(postgres_server, database), tmp_path) as (a, b):
        yield a, b, database


def _refresh_token(server: AuthServer) -> str:
    base = f"{server.base_url}/api/auth"
    user = httpx2.get(f"{base}/guest/refresh").json()["backstageIdentity"]["token"]
    return str(cli_grant(base, user, "cli", CALLBACK)["refresh_token"])


def _refresh(server: AuthServer, token: str, client_id: str | None = "cli") -> httpx2.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if client_id:
        data["client_id"] = client_id
    return httpx2.post(f"{server.base_url}/api/auth/v1/token", data=data, timeout=30)


def test_rotation_on_one_instance_is_seen_by_the_other(
    pair: tuple[AuthServer, AuthServer, str],
) -> None:
    a, b, _ = pair
    first = _refresh_token(a)
    rotated = _refresh(b, first)
    assert rotated.status_code == 200, rotated.text
    # Presented again without its client: reuse, the grant ends on both instances.
    assert _refresh(a, first, client_id=None).status_code == 400
    assert _refresh(b, rotated.json()["refresh_token"]).status_code == 400


def test_concurrent_refreshes_leave_one_live_token(
    pair: tuple[AuthServer, AuthServer, str], postgres_server: PostgresServer
) -> None:
    a, b, database = pair
    token = _refresh_token(a)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _refresh((a, b)[i % 2], token), range(8)))
    assert all(r.status_code in (200, 400) for r in answers)
    issued = [r.json()["refresh_token"] for r in answers if r.status_code == 200]
    assert issued
    with psycopg.connect(
        host=str(postgres_server.socket_dir), user="postgres", dbname=database
    ) as conn:
        rows = conn.execute("SELECT token_hash FROM offline_sessions").fetchall()
    assert len(rows) == 1
    hasher = TokenHasher([derive_key(SECRET)])
    live = [t for t in issued if hasher.matches(t, rows[0][0])]
    assert len(live) == 1
