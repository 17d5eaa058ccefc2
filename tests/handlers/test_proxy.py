"""Proxy-style providers: guest (protocol reference section 12)."""

from __future__ import annotations

import pytest

from tests.fakes.app_factory import JarlessClient

from .helpers import assert_json_error

GUEST_IDENTITY = {
    "type": "user",
    "userEntityRef": "user:development/guest",
    "ownershipEntityRefs": ["user:development/guest"],
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("query", ["", "?env=development", "?optional&env=whatever"])
def test_refresh_signs_in_as_guest(client: JarlessClient, method: str, query: str) -> None:
    # No X-Requested-With, no cookies, env ignored.
    response = client.request(method, f"/api/auth/guest/refresh{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert "set-cookie" not in response.headers
    body = response.json()
    assert list(body) == ["profile", "backstageIdentity"]  # providerInfo omitted
    assert body["profile"] == {}
    assert body["backstageIdentity"]["identity"] == GUEST_IDENTITY
    assert body["backstageIdentity"]["expiresInSeconds"] == 3600
    assert body["backstageIdentity"]["token"].count(".") == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "start?env=development"),
        ("GET", "handler/frame"),
        ("POST", "handler/frame"),
        ("GET", "frame/handler"),
    ],
)
def test_interactive_routes_are_not_implemented(
    client: JarlessClient, method: str, path: str
) -> None:
    response = client.request(method, f"/api/auth/guest/{path}")
    assert_json_error(response, 501, "NotImplementedError", "Not implemented", url=f"/guest/{path}")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_logout_route(client: JarlessClient, method: str) -> None:
    # Backstage: no /logout for proxy providers, so the catch-all's 404 (we match it).
    response = client.request(
        method, "/api/auth/guest/logout", headers={"X-Requested-With": "XMLHttpRequest"}
    )
    assert_json_error(
        response, 404, "NotFoundError", "Unknown auth provider 'guest'", url="/guest/logout"
    )
