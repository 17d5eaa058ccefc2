"""/api/auth identity endpoints and health (protocol reference section 8.4)."""

from __future__ import annotations

import pytest

from tests.fakes.app_factory import AUTH_BASE_URL, JarlessClient, build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

from .helpers import sign_in
from .test_refresh import refresh


def guest_token(client: JarlessClient) -> str:
    token = client.get("/api/auth/guest/refresh").json()["backstageIdentity"]["token"]
    assert isinstance(token, str)
    return token


def test_jwks(client: JarlessClient) -> None:
    guest_token(client)
    response = client.get("/api/auth/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert list(key) == ["kty", "x", "y", "crv", "kid", "alg"]
        assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
        assert "d" not in key


def test_openid_configuration(client: JarlessClient) -> None:
    response = client.get("/api/auth/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert list(doc.items()) == [
        ("issuer", AUTH_BASE_URL),
        ("token_endpoint", f"{AUTH_BASE_URL}/v1/token"),
        ("userinfo_endpoint", f"{AUTH_BASE_URL}/v1/userinfo"),
        ("jwks_uri", f"{AUTH_BASE_URL}/.well-known/jwks.json"),
        ("response_types_supported", ["code", "id_token"]),
        ("subject_types_supported", ["public"]),
        (
            "id_token_signing_alg_values_supported",
            [
                "RS256",
                "RS384",
                "RS512",
                "ES256",
                "ES384",
                "ES512",
                "PS256",
                "PS384",
                "PS512",
                "EdDSA",
            ],
        ),
        ("scopes_supported", ["openid"]),
        ("token_endpoint_auth_methods_supported", []),
        ("claims_supported", ["sub", "ent"]),
        ("grant_types_supported", ["authorization_code"]),
        ("authorization_endpoint", f"{AUTH_BASE_URL}/v1/authorize"),
        ("code_challenge_methods_supported", ["S256"]),
    ]


def test_userinfo_with_guest_token(client: JarlessClient) -> None:
    response = client.get(
        "/api/auth/v1/userinfo", headers={"Authorization": f"Bearer {guest_token(client)}"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "claims": {"sub": "user:development/guest", "ent": ["user:development/guest"]}
    }


def test_userinfo_with_token_from_oauth_refresh(client: JarlessClient) -> None:
    token = refresh(client, sign_in(client)).json()["backstageIdentity"]["token"]
    response = client.get("/api/auth/v1/userinfo", headers={"Authorization": f"bearer  {token}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "claims": {"sub": "user:default/jane.doe", "ent": ["user:default/jane.doe"]}
    }


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer a b"])
def test_userinfo_without_token(client: JarlessClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/api/auth/v1/userinfo", headers=headers)
    assert response.json() == {
        "error": {"name": "AuthenticationError", "message": "No token provided"},
        "request": {"method": "GET", "url": "/v1/userinfo"},
        "response": {"statusCode": 401},
    }
    assert response.status_code == 401


def test_userinfo_with_garbage_token(client: JarlessClient) -> None:
    guest_token(client)  # a current key exists
    response = client.get("/api/auth/v1/userinfo", headers={"Authorization": "Bearer abc.def.ghi"})
    assert response.status_code == 401
    assert response.json()["error"]["name"] == "AuthenticationError"
    assert response.json()["error"]["message"].startswith("Failed user token verification")


def test_userinfo_before_any_key_exists(clock: FakeClock) -> None:
    app = build_app(
        clock=FakeClock(), stub=StubProvider(), stub_persist=StubProvider(persist_scopes=True)
    )
    with make_client(app) as fresh:
        response = fresh.get(
            "/api/auth/v1/userinfo", headers={"Authorization": "Bearer abc.def.ghi"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["name"] == "AuthenticationError"


def test_userinfo_with_expired_token(client: JarlessClient, clock: FakeClock) -> None:
    token = guest_token(client)
    clock.advance(3601)
    response = client.get("/api/auth/v1/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Failed user token verification")


@pytest.mark.parametrize("probe", ["readiness", "liveness"])
def test_health(client: JarlessClient, probe: str) -> None:
    response = client.get(f"/.backstage/health/v1/{probe}")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
