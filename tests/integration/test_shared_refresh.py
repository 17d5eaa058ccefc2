"""Parallel refreshes across two instances sharing PostgreSQL (issue 6, item 2).

The OpenID provider rotates refresh tokens and revokes the whole grant when a rotated-away
token comes back, so any second upstream refresh of one session would log the user out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    login_through_interactions,
    start_openid_provider,
)
from tests.support.popup import popup_message
from tests.support.postgres import PostgresServer
from tests.support.server import AuthServer

pytestmark = pytest.mark.integration

SCOPE = "openid email profile offline_access"
XRW = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture
def deployment(
    postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[tuple[OpenIDProvider, AuthServer, AuthServer]]:
    port_a, port_b = free_port(), free_port()
    public = f"http://localhost:{port_a}"
    op = start_openid_provider(clients=[backstage_client(frame_callback(public))])
    database = f"auth_{uuid.uuid4().hex[:10]}"
    config: dict[str, Any] = {
        "app": {"baseUrl": "http://localhost:3000"},
        # One deployment behind a load balancer: the same public URL for both.
        "backend": {
            "baseUrl": public,
            "database": {
                "client": "pg",
                "connection": {"host": str(postgres_server.socket_dir), "user": "postgres"},
                "plugin": {"auth": {"connection": {"database": database}}},
            },
        },
        "auth": {
            "session": {"secret": "shared-secret-of-the-deployment-of-32-chars"},
            "providers": {"oidc": {"development": op.environment()}},
        },
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = AuthServer(config, tmp_path / "a", port=port_a)
    b = AuthServer(config, tmp_path / "b", port=port_b)
    try:
        a.launch()
        b.launch()
        a.wait_ready()
        b.wait_ready()
        yield op, a, b
    finally:
        a.stop()
        b.stop()
        op.stop()


def test_parallel_refreshes_across_instances_share_one_upstream_refresh(
    deployment: tuple[OpenIDProvider, AuthServer, AuthServer],
) -> None:
    op, a, b = deployment
    with httpx2.Client(follow_redirects=False, timeout=15) as browser:
        start = browser.get(
            f"{a.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "env": "development", "origin": "http://localhost:3000"},
        )
        back = login_through_interactions(browser, start.headers["location"], login="ada")
        assert browser.get(back.headers["location"]).status_code == 200
        cookie = browser.cookies["oidc-refresh-token"]
    op.reset_counts()

    async def refresh_all() -> list[httpx2.Response]:
        async with httpx2.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *[
                    client.get(
                        f"{server.base_url}/api/auth/oidc/refresh",
                        params={"env": "development", "scope": SCOPE},
                        headers={**XRW, "Cookie": f"oidc-refresh-token={cookie}"},
                    )
                    for server in [a, b] * 10
                ]
            )

    responses = asyncio.run(refresh_all())
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses][:3]
    assert op.counts()["token"] == {"refresh_token": 1}
    users = {r.json()["backstageIdentity"]["identity"]["userEntityRef"] for r in responses}
    assert users == {"user:default/ada"}
    # The rotated session handed to any tab goes on working, on either instance.
    rotated = responses[1].cookies["oidc-refresh-token"]
    for server in (b, a):
        again = httpx2.get(
            f"{server.base_url}/api/auth/oidc/refresh",
            params={"env": "development", "scope": SCOPE},
            headers={**XRW, "Cookie": f"oidc-refresh-token={rotated}"},
            timeout=15,
        )
        assert again.status_code == 200, again.text


def test_logout_and_a_used_state_hold_on_every_instance(
    deployment: tuple[OpenIDProvider, AuthServer, AuthServer],
) -> None:
    op, a, b = deployment
    with httpx2.Client(follow_redirects=False, timeout=15) as browser:
        start = browser.get(
            f"{a.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "env": "development", "origin": "http://localhost:3000"},
        )
        nonce = browser.cookies.get("oidc-nonce", path="/api/auth/oidc/handler")
        back = login_through_interactions(browser, start.headers["location"], login="ada")
        callback = httpx2.URL(back.headers["location"])
        assert browser.get(callback).status_code == 200
        cookie = browser.cookies["oidc-refresh-token"]
        op.reset_counts()
        # The same callback on the other instance: the state was used on the first one.
        replayed = httpx2.get(
            callback.copy_with(netloc=httpx2.URL(b.base_url).netloc),
            headers={"Cookie": f"oidc-nonce={nonce}"},
        )
        assert popup_message(replayed.text)["error"]["message"] == (
            "Invalid nonce, the state was used already"
        )
        logout = browser.post(
            f"{a.base_url}/api/auth/oidc/logout",
            params={"env": "development"},
            headers={**XRW, "Origin": "http://localhost:3000"},
        )
        assert logout.status_code == 200
    after = httpx2.get(
        f"{b.base_url}/api/auth/oidc/refresh",
        params={"env": "development", "scope": SCOPE},
        headers={**XRW, "Cookie": f"oidc-refresh-token={cookie}"},
        timeout=15,
    )
    assert after.status_code == 401
    assert after.json()["error"]["cause"]["message"] == "Session ended"
    assert op.counts()["token"] == {}
