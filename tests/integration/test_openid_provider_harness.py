"""The OpenID provider harness (tests/op + tests/support) works on its own, without our server.

Drives a real oidc-provider process with Authlib's OAuth2 client, the way an RP would.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

try:
    from tests.support.oidc_provider import (
        OpenIDProvider,
        login_through_interactions,
        start_openid_provider,
    )
except ModuleNotFoundError:  # pytest without the repo root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.support.oidc_provider import (
        OpenIDProvider,
        login_through_interactions,
        start_openid_provider,
    )

with warnings.catch_warnings():
    # Authlib 1.9 warns at import time that plain httpx is deprecated in favour of httpx2.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.integration

CLIENT_ID = "backstage"
CLIENT_SECRET = "backstage-secret"
REDIRECT_URI = "http://localhost:7007/api/auth/oidc/handler/frame"
SCOPE = "openid email profile offline_access"
CLIENT = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "redirect_uris": [REDIRECT_URI],
    "post_logout_redirect_uris": ["http://localhost:3000/"],
}


@pytest.fixture(scope="module")
def op() -> Iterator[OpenIDProvider]:
    provider = start_openid_provider(
        clients=[CLIENT], ttl={"AccessToken": 300, "IdToken": 300, "RefreshToken": 3600}
    )
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def op_no_rotation() -> Iterator[OpenIDProvider]:
    provider = start_openid_provider(clients=[CLIENT], rotate_refresh_tokens=False)
    try:
        yield provider
    finally:
        provider.stop()


def rp_client(scope: str = SCOPE) -> OAuth2Client:
    return OAuth2Client(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_basic",
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        timeout=10,
    )


def log_in(
    op: OpenIDProvider,
    browser: httpx2.Client,
    *,
    login: str,
    scope: str = SCOPE,
    prompt: str | None = "consent",
) -> tuple[dict[str, Any], str, httpx2.Response]:
    """Authorization code flow with PKCE; returns (token response, nonce, final redirect)."""
    meta = op.metadata()
    verifier = generate_token(48)
    nonce = generate_token(20)
    extra = {"prompt": prompt} if prompt is not None else {}
    with rp_client(scope) as rp:
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
        )
        final = login_through_interactions(browser, url, login=login)
        location = final.headers["location"]
        assert location.startswith(REDIRECT_URI + "?"), location
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state]
        assert query["iss"] == [op.issuer]
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=location, code_verifier=verifier
        )
    return dict(token), nonce, final


def refresh(op: OpenIDProvider, refresh_token: str) -> dict[str, Any]:
    with rp_client() as rp:
        return dict(rp.refresh_token(op.metadata()["token_endpoint"], refresh_token=refresh_token))


def userinfo(op: OpenIDProvider, access_token: str) -> httpx2.Response:
    return httpx2.get(
        op.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def test_metadata(op: OpenIDProvider) -> None:
    meta = op.metadata()
    assert op.metadata_url == f"{op.issuer}/.well-known/openid-configuration"
    assert op.issuer.startswith("http://localhost:")
    assert meta["issuer"] == op.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    for key in ("userinfo_endpoint", "revocation_endpoint", "end_session_endpoint"):
        assert meta[key].startswith(op.issuer + "/")
    assert {"openid", "email", "profile", "offline_access"} <= set(meta["scopes_supported"])
    assert op.startup_seconds is not None and op.startup_seconds < 30


def test_code_flow_refresh_rotation_and_reuse_detection(op: OpenIDProvider) -> None:
    op.reset_counts()
    with httpx2.Client(timeout=10) as browser:
        token, nonce, _ = log_in(op, browser, login="alice")
    assert token["access_token"] and token["id_token"] and token["refresh_token"]
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["expires_in"] == 300  # ttl.AccessToken from the fixture

    jwks = KeySet.import_key_set(httpx2.get(op.metadata()["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], jwks).claims
    assert claims["iss"] == op.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == "alice"
    assert claims["nonce"] == nonce
    assert claims["email"] == "alice@example.com"

    info = userinfo(op, token["access_token"])
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice",
        "preferred_username": "alice",
        "picture": "https://avatars.example.com/alice.png",
    }

    rt1 = token["refresh_token"]
    second = refresh(op, rt1)
    rt2 = second["refresh_token"]
    assert rt2 != rt1
    assert second["access_token"] != token["access_token"]
    assert second["id_token"]
    third = refresh(op, rt2)
    rt3 = third["refresh_token"]
    assert rt3 not in (rt1, rt2)

    with pytest.raises(OAuthError) as reused:
        refresh(op, rt1)
    assert reused.value.error == "invalid_grant"
    # Reuse detection revokes the whole grant: the latest token is dead too.
    with pytest.raises(OAuthError) as after_reuse:
        refresh(op, rt3)
    assert after_reuse.value.error == "invalid_grant"

    counts = op.counts()
    assert counts["token"] == {"authorization_code": 1, "refresh_token": 4}
    assert counts["token_errors"] == {"refresh_token": 2}
    assert counts["userinfo"] == 1
    assert counts["revocation"] == 0
    assert counts["authorization"] >= 1


def test_revocation(op: OpenIDProvider) -> None:
    op.reset_counts()
    with httpx2.Client(timeout=10) as browser:
        token, _, _ = log_in(op, browser, login="bob")
    with rp_client() as rp:
        response = rp.revoke_token(
            op.metadata()["revocation_endpoint"],
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
    assert response.status_code == 200, response.text
    with pytest.raises(OAuthError) as revoked:
        refresh(op, token["refresh_token"])
    assert revoked.value.error == "invalid_grant"
    counts = op.counts()
    assert counts["revocation"] == 1
    assert counts["token"] == {"authorization_code": 1, "refresh_token": 1}


def test_offline_access_kept_without_prompt_and_existing_session(op: OpenIDProvider) -> None:
    with httpx2.Client(timeout=10) as browser:
        # No prompt parameter: login + consent pages, and still a refresh token.
        token, _, first = log_in(op, browser, login="carol", prompt=None)
        assert first.request.url.path.startswith("/auth/")  # resumed after the interaction
        assert "offline_access" in token["scope"].split()
        assert token["refresh_token"]

        # Same browser, provider session + grant exist: straight back, no pages.
        token, _, again = log_in(op, browser, login="ignored", prompt=None)
        assert again.request.url.path == "/auth"
        assert token["refresh_token"]

        # prompt=none (Backstage's default) works with the session, refresh token included.
        token, _, silent = log_in(op, browser, login="ignored", prompt="none")
        assert silent.request.url.path == "/auth"
        assert token["refresh_token"]
        assert userinfo(op, token["access_token"]).json()["sub"] == "carol"


def test_prompt_none_without_session_is_login_required(op: OpenIDProvider) -> None:
    with rp_client() as rp:
        url, _ = rp.create_authorization_url(
            op.metadata()["authorization_endpoint"],
            code_verifier=generate_token(48),
            nonce="n",
            prompt="none",
        )
    with httpx2.Client(timeout=10) as browser:
        final = login_through_interactions(browser, url, login="dave")
    query = parse_qs(urlsplit(final.headers["location"]).query)
    assert query["error"] == ["login_required"]


def test_pkce_is_required(op: OpenIDProvider) -> None:
    with rp_client() as rp:
        rp.code_challenge_method = None
        url, _ = rp.create_authorization_url(op.metadata()["authorization_endpoint"], nonce="n")
    assert "code_challenge" not in url
    with httpx2.Client(timeout=10) as browser:
        final = login_through_interactions(browser, url, login="erin")
    query = parse_qs(urlsplit(final.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]


def test_no_refresh_token_without_offline_access(op: OpenIDProvider) -> None:
    with httpx2.Client(timeout=10) as browser:
        token, _, _ = log_in(op, browser, login="frank", scope="openid email profile")
    assert token["access_token"]
    assert "refresh_token" not in token


def test_rotation_off_allows_reusing_the_refresh_token(op_no_rotation: OpenIDProvider) -> None:
    op = op_no_rotation
    op.reset_counts()
    with httpx2.Client(timeout=10) as browser:
        token, _, _ = log_in(op, browser, login="alice")
    rt = token["refresh_token"]
    first = refresh(op, rt)
    second = refresh(op, rt)
    assert first["access_token"] != second["access_token"]
    # Without rotation the same refresh token comes back (or none at all).
    assert first.get("refresh_token", rt) == rt
    assert second.get("refresh_token", rt) == rt
    assert op.counts()["token"] == {"authorization_code": 1, "refresh_token": 2}
