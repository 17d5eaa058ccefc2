"""CORS from Backstage's ``backend.cors``, over HTTP against the real application."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.fakes.app_factory import APP_BASE_URL, BACKEND_BASE_URL, registry_app

APP = APP_BASE_URL


def _client(cors: dict[str, Any] | None) -> TestClient:
    app = registry_app(**({} if cors is None else {"cors": cors}))
    return TestClient(app, base_url=BACKEND_BASE_URL)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with _client(
        {
            "origin": [APP, "https://*.example.com"],
            "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
            "credentials": True,
        }
    ) as c:
        yield c


CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
}


def _cors(headers: Any) -> set[str]:
    return {k.lower() for k in headers} & CORS_HEADERS


@pytest.mark.parametrize("origin", [APP, "https://backstage.example.com"])
def test_preflight_from_an_allowed_origin(client: TestClient, origin: str) -> None:
    response = client.options(
        "/api/auth/oauth2/refresh",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-requested-with",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "x-requested-with"
    assert "Origin" in response.headers["vary"]


def test_the_first_refresh_401_carries_cors_headers(client: TestClient) -> None:
    # Without these the browser reports a network error and the app never opens a popup.
    response = client.get(
        "/api/auth/oauth2/refresh?optional&scope=&env=development",
        headers={"Origin": APP, "X-Requested-With": "XMLHttpRequest"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["name"] == "AuthenticationError"
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]


def test_success_and_logout_carry_cors_headers(client: TestClient) -> None:
    ok = client.get("/api/auth/guest/refresh", headers={"Origin": APP})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == APP
    logout = client.post(
        "/api/auth/oauth2/logout?env=development",
        headers={"Origin": APP, "X-Requested-With": "XMLHttpRequest"},
    )
    assert logout.status_code == 200
    assert logout.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://a.b.example.com",  # a wildcard never spans a dot
        "https://example.com.evil.com",
        "http://localhost:3001",
        "null",
    ],
)
def test_a_refused_origin_gets_no_cors_headers(client: TestClient, origin: str) -> None:
    preflight = client.options(
        "/api/auth/oauth2/refresh",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 403
    assert _cors(preflight.headers) == set()
    actual = client.get("/api/auth/guest/refresh", headers={"Origin": origin})
    assert actual.status_code == 200
    assert _cors(actual.headers) == set()


def test_never_a_wildcard_with_credentials(client: TestClient) -> None:
    response = client.get("/api/auth/guest/refresh", headers={"Origin": APP})
    assert response.headers["access-control-allow-origin"] != "*"


def test_without_backend_cors_no_cors_headers_at_all() -> None:
    with _client(None) as c:
        preflight = c.options(
            "/api/auth/oauth2/refresh",
            headers={"Origin": APP, "Access-Control-Request-Method": "GET"},
        )
        assert _cors(preflight.headers) == set()
        actual = c.get("/api/auth/guest/refresh", headers={"Origin": APP})
        assert _cors(actual.headers) == set()


def test_configured_headers_and_max_age() -> None:
    with _client(
        {
            "origin": APP,
            "methods": "GET,POST",
            "allowedHeaders": ["X-Requested-With", "Authorization"],
            "exposedHeaders": "X-Request-Id",
            "maxAge": 3600,
        }
    ) as c:
        preflight = c.options(
            "/api/auth/oauth2/refresh",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-requested-with",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-max-age"] == "3600"
        assert "access-control-allow-credentials" not in preflight.headers
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "x-requested-with" in allowed and "authorization" in allowed
        actual = c.get("/api/auth/guest/refresh", headers={"Origin": APP})
        assert actual.headers["access-control-expose-headers"] == "X-Request-Id"
