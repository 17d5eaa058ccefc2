"""The development identity provider answers only loopback peers naming a loopback host,
whatever the configuration says about the listener (gunicorn may bind elsewhere; a
rebinding DNS name reaches a loopback server under another host name)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.support.cli_server import default_config

PORT = 7007
DISCOVERY = "/dev-idp/.well-known/openid-configuration"


def _client(peer: str, *, trusted_proxies: list[str] | None = None) -> TestClient:
    config = default_config(PORT)
    config["backend"]["listen"]["host"] = "127.0.0.1"
    if trusted_proxies:
        config["backend"]["trustedProxies"] = trusted_proxies
    app = create_app(
        read_settings(config), development=True, deps=Dependencies(clock=SystemClock())
    )
    return TestClient(app, base_url=f"http://localhost:{PORT}", client=(peer, 40000))


@pytest.fixture
def loopback() -> Iterator[TestClient]:
    with _client("127.0.0.1") as client:
        yield client


@pytest.mark.parametrize("host", [f"localhost:{PORT}", "127.0.0.1", f"[::1]:{PORT}", "localhost"])
def test_loopback_peers_naming_loopback_hosts_are_served(loopback: TestClient, host: str) -> None:
    assert loopback.get(DISCOVERY, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("peer", ["10.0.0.5", "192.168.1.20", "2001:db8::1"])
def test_a_peer_other_than_loopback_is_refused(peer: str) -> None:
    with _client(peer) as client:
        for path in (DISCOVERY, "/dev-idp/authorize?client_id=backstage-dev", "/dev-idp"):
            response = client.get(path)
            assert response.status_code == 403, (path, response.text)
        assert response.json() == {
            "error": {
                "name": "NotAllowedError",
                "message": "The development identity provider refuses a request from an "
                "address other than loopback",
            },
            "request": {"method": "GET", "url": "/dev-idp"},
            "response": {"statusCode": 403},
        }
        # The rest of the server is not concerned.
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "host", ["rebind.example:7007", "rebind.example", "127.0.0.1.nip.io", "[2001:db8::1]:7007"]
)
def test_a_host_other_than_loopback_is_refused(loopback: TestClient, host: str) -> None:
    # DNS rebinding: another site's name, resolving to 127.0.0.1.
    response = loopback.post("/dev-idp/token", headers={"Host": host}, data={"code": "x"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"] == (
        "The development identity provider refuses a request for a host other than loopback"
    )


def test_a_trusted_proxy_cannot_make_a_remote_client_loopback() -> None:
    # The direct peer counts, not the address a proxy forwards.
    with _client("10.0.0.5", trusted_proxies=["10.0.0.0/8"]) as client:
        response = client.get(DISCOVERY, headers={"X-Forwarded-For": "127.0.0.1"})
    assert response.status_code == 403
