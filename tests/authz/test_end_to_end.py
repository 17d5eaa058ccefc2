"""End to end with Authlib's OAuth 2 client as the CLI: authorize with PKCE, approve as
the user, exchange the code, read userinfo, refresh, revoke (SQLite)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.fakes.app_factory import AUTH_BASE_URL

from .conftest import CALLBACK, PUBLIC, World, approve, code_grant, user_token

TOKEN_URL = f"{AUTH_BASE_URL}/v1/token"


def _cli(world: World) -> OAuth2Client:
    # The CLI's HTTP goes through the in-process app.
    return OAuth2Client(
        client_id=PUBLIC,
        redirect_uri="http://127.0.0.1:53682/callback",  # any loopback port (RFC 8252)
        scope="openid offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
        transport=world.client._transport,
    )


def _claims(token: str) -> dict[str, Any]:
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "==")))


def test_cli_login_refresh_and_revoke_with_authlib(world: World) -> None:
    client = world.client
    cli = _cli(world)
    verifier = "v" * 64
    url, state = cli.create_authorization_url(
        f"{AUTH_BASE_URL}/v1/authorize", code_verifier=verifier
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge"] == [create_s256_code_challenge(verifier)]

    # The browser: authorize -> the app's consent page -> the user approves.
    response = client.get(url)
    assert response.status_code == 302
    session_id = response.headers["location"].rsplit("/", 1)[1]
    session = client.get(f"/api/auth/v1/sessions/{session_id}").json()
    assert session == {
        "id": session_id,
        "clientId": PUBLIC,
        "clientName": "Backstage CLI",
        "scope": "openid offline_access",
        "redirectUri": "http://127.0.0.1:53682/callback",
    }
    redirect_url = client.post(
        f"/api/auth/v1/sessions/{session_id}/approve",
        headers={"Authorization": f"Bearer {user_token(client)}"},
    ).json()["redirectUrl"]
    assert parse_qs(urlsplit(redirect_url).query)["state"] == [state]

    # The CLI: code exchange with its verifier.
    token = cli.fetch_token(TOKEN_URL, authorization_response=redirect_url, code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert token["id_token"] == token["access_token"]
    assert token["scope"] == "openid offline_access"
    assert _claims(token["access_token"])["sub"] == "user:development/guest"
    assert token["refresh_token"].count(".") == 1

    info = client.get(
        "/api/auth/v1/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["claims"]["sub"] == "user:development/guest"

    world.clock.advance(60)
    refreshed = cli.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert _claims(refreshed["access_token"])["sub"] == "user:development/guest"
    assert "id_token" not in refreshed

    cli.revoke_token(f"{AUTH_BASE_URL}/v1/revoke", refreshed["refresh_token"])
    after = client.post(
        "/api/auth/v1/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": PUBLIC,
        },
    )
    assert after.status_code == 400
    assert after.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_token_responses_are_never_cached(world: World) -> None:
    response = world.client.post("/api/auth/v1/token", data={"grant_type": "x"})
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_the_code_is_single_use(world: World) -> None:
    client = world.client
    from .conftest import pkce, start

    verifier, challenge = pkce()
    code = approve(client, start(client, challenge=challenge))["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": PUBLIC,
    }
    first = client.post("/api/auth/v1/token", data=data)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    second = client.post("/api/auth/v1/token", data=data)
    assert second.status_code == 400
    assert second.json() == {
        "error": "invalid_grant",
        "error_description": "Authorization code already used",
    }


def test_json_bodies_work_as_forms_do(world: World) -> None:
    body = code_grant(world.client)
    response = world.client.post(
        "/api/auth/v1/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": PUBLIC,
        },
    )
    assert response.status_code == 200, response.text
