"""pinniped against a real OpenID provider (oidc-provider 9) playing a Pinniped Supervisor:
ES256 ID tokens and the RFC 8693 token exchange (``tokenExchange`` in tests/op/server.mjs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    login_through_interactions,
    start_openid_provider,
)
from tests.support.popup import popup_message
from tests.support.server import AuthServer

pytestmark = pytest.mark.integration

APP_ORIGIN = "http://localhost:3000"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
XRW = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenIDProvider, AuthServer]]:
    port = free_port()
    op = start_openid_provider(
        clients=[
            backstage_client(
                frame_callback(f"http://localhost:{port}", "pinniped"),
                grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
                id_token_signed_response_alg="ES256",
            )
        ],
        extra_config={"tokenExchange": True},
    )
    config = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "auth": {
            "session": {"secret": "integration-test-secret-of-32-characters"},
            "providers": {
                "pinniped": {
                    "development": {
                        "federationDomain": op.issuer,
                        "clientId": "backstage",
                        "clientSecret": "backstage-secret",
                    }
                }
            },
        },
    }
    server = AuthServer(config, tmp_path_factory.mktemp("pinniped"), port=port)
    try:
        server.start()
        yield op, server
    finally:
        server.stop()
        op.stop()


def _verified_claims(op: OpenIDProvider, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx2.get(op.metadata()["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    return dict(decoded.claims)


def _sign_in(browser: httpx2.Client, server: AuthServer, audience: str) -> dict[str, Any]:
    start = browser.get(
        f"{server.base_url}/api/auth/pinniped/start",
        params={"env": "development", "origin": APP_ORIGIN, "audience": audience},
    )
    assert start.status_code == 302, start.text
    back = login_through_interactions(browser, start.headers["location"], login="kate")
    message: dict[str, Any] = popup_message(browser.get(back.headers["location"]).text)
    return message


def test_cluster_scoped_id_token_from_the_token_exchange(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    op.reset_counts()
    with httpx2.Client(follow_redirects=False, timeout=15.0) as browser:
        message = _sign_in(browser, server, "cluster-a")
        response = message["response"]
        assert response["profile"] == {}
        scope = set(response["providerInfo"]["scope"].split())
        assert {"openid", "pinniped:request-audience", "username", "offline_access"} <= scope
        # The ID token in providerInfo is the exchanged one, for the cluster.
        claims = _verified_claims(op, response["providerInfo"]["idToken"])
        assert (claims["iss"], claims["aud"], claims["sub"]) == (op.issuer, "cluster-a", "kate")
        assert op.counts()["token"] == {"authorization_code": 1, TOKEN_EXCHANGE: 1}

        # Refresh has no state, hence no audience: the provider's own ES256 ID token.
        refreshed = browser.get(
            f"{server.base_url}/api/auth/pinniped/refresh",
            params={"env": "development"},
            headers=XRW,
        )
        assert refreshed.status_code == 200, refreshed.text
        own = _verified_claims(op, refreshed.json()["providerInfo"]["idToken"])
        assert (own["aud"], own["username"]) == ("backstage", "kate")
        assert op.counts()["token"] == {
            "authorization_code": 1,
            TOKEN_EXCHANGE: 1,
            "refresh_token": 1,
        }

    # The supervisor refuses a reserved audience: Backstage's error reaches the app window.
    with httpx2.Client(follow_redirects=False, timeout=15.0) as browser:
        error = _sign_in(browser, server, "x.pinniped.dev")["error"]
        assert error["name"] == "Error"
        assert error["message"] == (
            'Failed to get cluster specific ID token for "x.pinniped.dev": Error: RFC8693 '
            "token exchange failed with error: OPError: invalid_request (requested audience "
            "cannot contain '.pinniped.dev')"
        )
        assert browser.cookies.get("pinniped-refresh-token") is None
