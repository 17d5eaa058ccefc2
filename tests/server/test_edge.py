"""The edge: trusted proxies and rate limits (app/server/middleware/edge.py), through the
real application."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.wiring import Dependencies


def _client(backend: dict[str, Any], *, peer: str = "10.0.0.5") -> TestClient:
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": "http://localhost:7007", **backend},
            "auth": {"providers": {"guest": {}}},
        }
    )
    app = create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))
    return TestClient(app, base_url="http://localhost:7007", client=(peer, 40000))


def test_requests_over_the_limit_get_429_with_retry_after() -> None:
    limit = {"rateLimit": {"window": "1m", "incomingRequestLimit": 3}}
    with _client(limit) as client:
        statuses = [client.get("/api/auth/guest/refresh").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/api/auth/guest/refresh?x=1")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json() == {
            "error": {
                "name": "TooManyRequestsError",
                "message": "Too many requests, please try again later",
            },
            "request": {"method": "GET", "url": "/guest/refresh?x=1"},
            "response": {"statusCode": 429},
        }
        # Only /start and /refresh are limited.
        assert client.get("/api/auth/.well-known/jwks.json").status_code == 200


def test_limits_are_per_client_address_and_the_allow_list_is_exempt() -> None:
    limit = {"rateLimit": {"incomingRequestLimit": 1, "ipAllowList": ["192.168.0.0/16"]}}
    with _client(limit, peer="10.0.0.5") as first:
        assert first.get("/api/auth/guest/refresh").status_code == 200
        assert first.get("/api/auth/guest/refresh").status_code == 429
    with _client(limit, peer="192.168.1.9") as exempt:
        assert [exempt.get("/api/auth/guest/refresh").status_code for _ in range(3)] == [200] * 3


def test_plugin_auth_options_win() -> None:
    limit = {
        "rateLimit": {"incomingRequestLimit": 100, "plugin": {"auth": {"incomingRequestLimit": 1}}}
    }
    with _client(limit) as client:
        assert client.get("/api/auth/guest/refresh").status_code == 200
        assert client.get("/api/auth/guest/refresh").status_code == 429


def test_forwarded_for_is_ignored_from_untrusted_peers() -> None:
    # Without trust, a client cannot dodge its limit by inventing X-Forwarded-For.
    limit = {"rateLimit": {"incomingRequestLimit": 1}}
    with _client(limit, peer="10.0.0.5") as client:
        assert (
            client.get(
                "/api/auth/guest/refresh", headers={"X-Forwarded-For": "1.1.1.1"}
            ).status_code
            == 200
        )
        assert (
            client.get(
                "/api/auth/guest/refresh", headers={"X-Forwarded-For": "2.2.2.2"}
            ).status_code
            == 429
        )


def test_forwarded_for_names_the_client_behind_a_trusted_proxy() -> None:
    backend = {"rateLimit": {"incomingRequestLimit": 1}, "trustedProxies": ["10.0.0.0/8"]}
    with _client(backend, peer="10.0.0.5") as proxy:
        assert (
            proxy.get("/api/auth/guest/refresh", headers={"X-Forwarded-For": "1.1.1.1"}).status_code
            == 200
        )
        # Another client behind the same proxy has its own budget.
        assert (
            proxy.get("/api/auth/guest/refresh", headers={"X-Forwarded-For": "2.2.2.2"}).status_code
            == 200
        )
        assert (
            proxy.get("/api/auth/guest/refresh", headers={"X-Forwarded-For": "1.1.1.1"}).status_code
            == 429
        )


def test_no_limits_unless_configured() -> None:
    with _client({}) as client:
        assert {client.get("/api/auth/guest/refresh").status_code for _ in range(20)} == {200}


def test_callbacks_are_limited_too() -> None:
    # Each callback with a matching nonce makes a client-authenticated token request to the
    # identity provider: /handler/frame (GET and POST) and its alias share the budget.
    limit = {"rateLimit": {"window": "1m", "incomingRequestLimit": 30}}
    with _client(limit) as client:
        statuses = []
        for i in range(40):
            if i % 3 == 0:
                response = client.post("/api/auth/guest/handler/frame", data={"state": "x"})
            elif i % 3 == 1:
                response = client.get("/api/auth/guest/handler/frame?state=x")
            else:
                response = client.get("/api/auth/guest/frame/handler?state=x")
            statuses.append(response.status_code)
        assert 429 not in statuses[:30]
        assert statuses[30:] == [429] * 10
        assert response.json()["error"]["name"] == "TooManyRequestsError"
