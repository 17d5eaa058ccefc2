"""Backstage's statuses and bodies for the authorization routes, and ours where better."""

from __future__ import annotations

import base64
import logging

import pytest

from tests.fakes.app_factory import AUTH_BASE_URL, make_client
from tests.fakes.clock import FakeClock

from .conftest import (
    CALLBACK,
    CONFIDENTIAL,
    PUBLIC,
    SECRET,
    SERVICE_TOKEN,
    World,
    approve,
    build,
    code_grant,
    config,
    pkce,
    start,
    user_token,
)

TOKEN = "/api/auth/v1/token"


def _refresh(world: World, token: str, client_id: str | None = PUBLIC) -> tuple[int, dict]:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if client_id:
        data["client_id"] = client_id
    response = world.client.post(TOKEN, data=data)
    return response.status_code, response.json()


def test_discovery_gains_backstages_conditional_keys(world: World) -> None:
    doc = world.client.get("/api/auth/.well-known/openid-configuration").json()
    assert doc["scopes_supported"] == ["openid", "offline_access"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert list(doc)[-1] == "revocation_endpoint"
    assert doc["revocation_endpoint"] == f"{AUTH_BASE_URL}/v1/revoke"


def test_cli_metadata_is_not_found_while_cimd_is_off(world: World) -> None:
    response = world.client.get("/api/auth/.well-known/oauth-client/cli.json")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": "Client ID metadata documents not enabled",
    }


def test_routes_are_not_mounted_without_static_clients() -> None:
    raw = config(staticClients=[], experimentalRefreshToken={"enabled": False})
    with make_client(build(raw, FakeClock())) as client:
        response = client.get("/api/auth/v1/authorize")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Unknown auth provider 'v1'"
        doc = client.get("/api/auth/.well-known/openid-configuration").json()
        assert "revocation_endpoint" not in doc
        assert doc["token_endpoint_auth_methods_supported"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"client_id": "nope"}, "Invalid client_id: not a valid URL"),
        ({"client_id": "https://x.example/c.json"}, "Client ID metadata documents not enabled"),
        (
            {"redirect_uri": "http://evil.example/cb"},
            "Invalid redirect_uri 'http://evil.example/cb'",
        ),
        (
            {"redirect_uri": "https://127.0.0.1:8055/callback"},
            "Invalid redirect_uri 'https://127.0.0.1:8055/callback'",
        ),
        (
            {"redirect_uri": "http://127.0.0.1:9/other"},
            "Invalid redirect_uri 'http://127.0.0.1:9/other'",
        ),
        ({"response_type": "token"}, "Only authorization code flow is supported"),
        (
            {"code_challenge": ""},
            "PKCE is required for all clients. Provide a code_challenge parameter.",
        ),
        ({"code_challenge_method": "plain"}, "Invalid code_challenge_method"),
    ],
)
def test_authorize_refusals_are_backstage_errors_without_redirect(
    world: World, params: dict[str, str], message: str
) -> None:
    query = {
        "client_id": PUBLIC,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "code_challenge": pkce()[1],
        "code_challenge_method": "S256",
        **params,
    }
    response = world.client.get("/api/auth/v1/authorize", params=query)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"] == {"name": "InputError", "message": message}


def test_authorize_validation_is_invalid_request(world: World) -> None:
    response = world.client.get("/api/auth/v1/authorize", params={"client_id": PUBLIC})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_loopback_redirect_matches_any_port(world: World) -> None:
    start(world.client, redirect_uri="http://127.0.0.1:61234/callback")


def test_approve_and_reject_need_a_user(world: World) -> None:
    session = start(world.client)
    for action in ("approve", "reject"):
        response = world.client.post(f"/api/auth/v1/sessions/{session}/{action}")
        assert response.status_code == 403
        assert response.json() == {
            "error": "access_denied",
            "error_description": "Authentication required",
        }
    service = world.client.post(
        f"/api/auth/v1/sessions/{session}/approve",
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
    )
    assert service.status_code == 403
    forged = world.client.post(
        f"/api/auth/v1/sessions/{session}/approve", headers={"Authorization": "Bearer a.b.c"}
    )
    assert forged.status_code == 401
    assert forged.headers["www-authenticate"] == 'Basic realm="auth"'
    assert forged.json()["error"] == "invalid_client"


def test_reject_redirects_with_access_denied_and_a_session_is_decided_once(world: World) -> None:
    session = start(world.client, state="s1")
    auth = {"Authorization": f"Bearer {user_token(world.client)}"}
    response = world.client.post(f"/api/auth/v1/sessions/{session}/reject", headers=auth)
    assert response.json()["redirectUrl"] == (
        f"{CALLBACK}?error=access_denied&error_description=User+denied+the+request&state=s1"
    )
    again = world.client.post(f"/api/auth/v1/sessions/{session}/approve", headers=auth)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_request",
        "error_description": "Authorization session not found or expired",
    }
    assert world.client.get(f"/api/auth/v1/sessions/{session}").status_code == 400


def test_sessions_expire_after_an_hour(world: World) -> None:
    session = start(world.client)
    world.clock.advance(3601)
    response = world.client.get(f"/api/auth/v1/sessions/{session}")
    assert response.json()["error_description"] == "Authorization session expired"


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"code_verifier": "wrong" * 10}, "Invalid code verifier"),
        ({"code_verifier": ""}, "Code verifier required for PKCE"),
        ({"redirect_uri": "http://127.0.0.1:8055/other"}, "Redirect URI mismatch"),
        ({"client_id": "someone-else"}, "Client ID mismatch"),
        ({"code": "unknown"}, "Invalid authorization code"),
    ],
)
def test_code_exchange_failures_are_invalid_grant(
    world: World, change: dict[str, str], description: str
) -> None:
    verifier, challenge = pkce()
    code = approve(world.client, start(world.client, challenge=challenge))["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": PUBLIC,
        **change,
    }
    response = world.client.post(TOKEN, data=data)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": description}


def test_codes_expire_after_ten_minutes(world: World) -> None:
    verifier, challenge = pkce()
    code = approve(world.client, start(world.client, challenge=challenge))["code"][0]
    world.clock.advance(601)
    response = world.client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": PUBLIC,
        },
    )
    assert response.json()["error_description"] == "Authorization code expired"


def test_confidential_clients_must_authenticate(world: World) -> None:
    verifier, challenge = pkce()
    session = start(
        world.client,
        client_id=CONFIDENTIAL,
        redirect_uri="https://app.example.com/cb",
        challenge=challenge,
    )
    code = approve(world.client, session)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://app.example.com/cb",
        "code_verifier": verifier,
    }
    missing = world.client.post(TOKEN, data={**data, "client_id": CONFIDENTIAL})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="auth"'
    assert missing.json()["error"] == "invalid_client"
    wrong = world.client.post(TOKEN, data=data, auth=(CONFIDENTIAL, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "invalid_client",
        "error_description": "Invalid client credentials",
    }
    ok = world.client.post(TOKEN, data=data, auth=(CONFIDENTIAL, SECRET))
    assert ok.status_code == 200, ok.text
    assert "refresh_token" in ok.json()


def test_unsupported_grant_type(world: World) -> None:
    response = world.client.post(TOKEN, data={"grant_type": "password"})
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "Grant type password is not supported",
    }


def test_refresh_rotation_and_reuse_ends_the_grant(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    first = code_grant(world.client)["refresh_token"]
    status, body = _refresh(world, first)
    assert status == 200
    second = body["refresh_token"]
    world.clock.advance(60)  # past the retry grace
    with caplog.at_level(logging.INFO, logger="app.audit"):
        status, body = _refresh(world, first)
    assert status == 400
    assert body["error"] == "invalid_grant"
    assert any(r.message == "refresh-token-reuse" for r in caplog.records)
    # The attacker's (or the victim's) newer token died with the grant.
    assert _refresh(world, second)[0] == 400


def test_a_retry_within_the_grace_rotates_once_more(world: World) -> None:
    first = code_grant(world.client)["refresh_token"]
    _, lost = _refresh(world, first)
    status, retried = _refresh(world, first)
    assert status == 200
    # Only the newest lives: the lost answer's token is rotated out.
    assert _refresh(world, retried["refresh_token"])[0] == 200


def test_a_retry_without_the_client_id_is_reuse(world: World) -> None:
    first = code_grant(world.client)["refresh_token"]
    _, body = _refresh(world, first)
    assert _refresh(world, first, client_id=None)[0] == 400
    assert _refresh(world, body["refresh_token"])[0] == 400


def test_refresh_tokens_are_bound_to_their_client(world: World) -> None:
    token = code_grant(world.client)["refresh_token"]
    status, body = _refresh(world, token, client_id="other")
    assert (status, body["error_description"]) == (
        400,
        "Refresh token was not issued to this client",
    )


def test_refresh_token_lifetime(world: World) -> None:
    token = code_grant(world.client)["refresh_token"]
    world.clock.advance(30 * 86400 + 1)
    assert _refresh(world, token) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid refresh token"},
    )


def test_malformed_refresh_tokens(world: World) -> None:
    status, body = _refresh(world, "no-dot")
    assert body["error_description"] == "Invalid refresh token format"
    status, body = _refresh(world, "unknown.token")
    assert body["error_description"] == "Invalid refresh token"


def test_one_grant_per_client_and_user(world: World) -> None:
    first = code_grant(world.client)["refresh_token"]
    code_grant(world.client)
    assert _refresh(world, first)[0] == 400


def test_a_user_gone_from_the_catalog_ends_the_grant() -> None:
    from app.identity.catalog import InMemoryCatalog

    clock = FakeClock()
    with make_client(build(config(), clock, catalog=InMemoryCatalog([]))) as client:
        token = code_grant(client)["refresh_token"]
        response = client.post(
            TOKEN, data={"grant_type": "refresh_token", "refresh_token": token, "client_id": PUBLIC}
        )
        assert response.json()["error_description"] == "User entity no longer exists in the catalog"


def test_the_presence_check_asks_a_remote_catalog_live() -> None:
    """A user removed from a remote catalog cannot refresh even once more: the check is
    not answered from the sign-in lookups' cache (as Backstage's getEntityByRef)."""
    import httpx2

    from app.identity.remote_catalog import RemoteCatalog

    present = [True]
    entity = {"kind": "User", "metadata": {"name": "guest", "namespace": "development"}}

    def answer(request: httpx2.Request) -> httpx2.Response:
        if not present[0]:
            return httpx2.Response(404, json={"error": {"name": "NotFoundError"}})
        if request.url.path.endswith("/entities/by-name/user/development/guest"):
            return httpx2.Response(200, json=entity)
        return httpx2.Response(200, json={"items": [entity], "pageInfo": {}})

    clock = FakeClock()
    catalog = RemoteCatalog(
        "http://catalog:7007", "token", clock=clock, transport=httpx2.MockTransport(answer)
    )
    with make_client(build(config(), clock, catalog=catalog)) as client:
        token = code_grant(client)["refresh_token"]
        refreshed = client.post(
            TOKEN, data={"grant_type": "refresh_token", "refresh_token": token, "client_id": PUBLIC}
        )
        assert refreshed.status_code == 200, refreshed.text
        present[0] = False  # removed; the sign-in cache (10 s) still holds the user
        response = client.post(
            TOKEN,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refreshed.json()["refresh_token"],
                "client_id": PUBLIC,
            },
        )
        assert response.json()["error_description"] == "User entity no longer exists in the catalog"


def test_revoke_needs_a_client(world: World) -> None:
    response = world.client.post("/api/auth/v1/revoke", data={"token": "x.y"})
    assert response.status_code == 401
    assert response.json()["error_description"] == "Client authentication required"
    bad = world.client.post("/api/auth/v1/revoke", data={"token": "x.y"}, auth=(CONFIDENTIAL, "no"))
    assert bad.status_code == 401
    ok = world.client.post("/api/auth/v1/revoke", data={"token": "x.y", "client_id": PUBLIC})
    assert (ok.status_code, ok.content) == (200, b"")


def test_revoke_needs_the_token_not_only_its_id(world: World) -> None:
    token = code_grant(world.client)["refresh_token"]
    forged = token.split(".")[0] + ".guessed"
    world.client.post("/api/auth/v1/revoke", data={"token": forged, "client_id": PUBLIC})
    assert _refresh(world, token)[0] == 200


def test_offline_sessions_revoke_takes_service_tokens_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    token = code_grant(world.client)["refresh_token"]
    url = "/api/auth/v1/offline-sessions/revoke"
    body = {"userEntityRef": "development/guest"}
    none = world.client.post(url, json=body)
    assert (none.status_code, none.json()["error"]["message"]) == (401, "Missing credentials")
    user = world.client.post(
        url, json=body, headers={"Authorization": f"Bearer {user_token(world.client)}"}
    )
    assert user.status_code == 403
    assert user.json()["error"]["message"] == "This endpoint does not allow 'user' credentials"
    illegal = world.client.post(url, json=body, headers={"Authorization": "Bearer nonsense"})
    assert (illegal.status_code, illegal.json()["error"]["message"]) == (401, "Illegal token")
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    group = world.client.post(url, json={"userEntityRef": "group:default/x"}, headers=service)
    assert group.status_code == 400
    with caplog.at_level(logging.INFO, logger="app.audit"):
        ok = world.client.post(url, json=body, headers=service)
    assert ok.json() == {"revokedCount": 1}
    assert any(r.message == "offline-sessions-revoke" for r in caplog.records)
    assert _refresh(world, token)[0] == 400


def test_basic_credentials_are_form_decoded() -> None:
    from app.handlers.authorization_wire import client_credentials

    header = "Basic " + base64.b64encode(b"my+client:p%40ss").decode()
    assert client_credentials(header, None, None) == ("my client", "p@ss")
