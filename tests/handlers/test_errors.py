"""Routing errors and the standard error body (protocol reference sections 1.2, 1.3)."""

from __future__ import annotations

import json

import pytest
from connexion.exceptions import NonConformingResponseBody
from connexion.lifecycle import ConnexionRequest

from app.server import error_handlers
from tests.fakes.app_factory import JarlessClient
from tests.fakes.stub_provider import StubAuthenticator

from .helpers import assert_json_error


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/api/auth/nope/start?env=development", "nope"),
        ("/api/auth/nope/refresh", "nope"),
        ("/api/auth/nope", "nope"),
        # Configured, but no module registers it: not mounted.
        ("/api/auth/nonexistent/start?env=development", "nonexistent"),
        ("/api/auth/nonexistent/refresh?env=development", "nonexistent"),
        # Mounted, but no such route.
        ("/api/auth/stub", "stub"),
        ("/api/auth/stub/", "stub"),
        ("/api/auth/stub/nope", "stub"),
    ],
)
def test_unknown_provider_or_route(client: JarlessClient, path: str, provider: str) -> None:
    response = client.get(path)
    assert_json_error(
        response,
        404,
        "NotFoundError",
        f"Unknown auth provider '{provider}'",
        url=path.removeprefix("/api/auth"),
    )


def test_exact_unknown_provider_body(client: JarlessClient) -> None:
    response = client.post("/api/auth/nope/logout?env=development")
    assert response.content == (
        b'{"error":{"name":"NotFoundError","message":"Unknown auth provider \'nope\'"},'
        b'"request":{"method":"POST","url":"/nope/logout?env=development"},'
        b'"response":{"statusCode":404}}'
    )


def test_outside_the_auth_plugin(client: JarlessClient) -> None:
    assert_json_error(client.get("/nothing/here"), 404, "NotFoundError", "Not found")


def test_method_not_allowed(client: JarlessClient) -> None:
    # Backstage: 404 "Unknown auth provider 'stub'" (catch-all); we answer a documented 405.
    response = client.delete("/api/auth/stub/refresh", params={"env": "development"})
    assert_json_error(
        response,
        405,
        "MethodNotAllowedError",
        "Method DELETE is not allowed for /api/auth/stub/refresh",
    )
    assert "GET" in response.headers["allow"]


def test_method_not_allowed_lists_every_method(client: JarlessClient) -> None:
    response = client.delete("/api/auth/stub/refresh", params={"env": "development"})
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_unexpected_error_is_hidden(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.start_error = RuntimeError("secret internals")
    response = client.get("/api/auth/stub/start", params={"env": "development"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["error"]["name"] == "Error"
    assert body["error"]["message"].startswith("An internal error occurred")
    assert "secret internals" not in response.text
    assert body["response"] == {"statusCode": 500}


def test_request_url_is_relative_to_the_mount_and_keeps_the_raw_query(
    client: JarlessClient,
) -> None:
    response = client.get("/api/auth/stub/start?env=staging&x=%2F")
    assert response.json()["request"] == {"method": "GET", "url": "/stub/start?env=staging&x=%2F"}


def test_empty_logout_response_conforms_to_the_spec(client: JarlessClient) -> None:
    response = client.post(
        "/api/auth/stub/logout",
        params={"env": "development"},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert response.status_code == 200, response.text
    assert response.content == b""


def _connexion_request(path: str) -> ConnexionRequest:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    return ConnexionRequest(scope)


def test_server_side_problem_stays_a_500() -> None:
    exc = NonConformingResponseBody("Response body does not conform to specification.")
    response = error_handlers.problem(_connexion_request("/api/auth/stub/logout"), exc)
    assert response.status_code == 500
    assert json.loads(response.body)["error"]["name"] == "Error"
