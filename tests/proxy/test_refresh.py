"""``/refresh`` of the five proxy providers, through the real app.
Backstage: ``plugins/auth-node/src/proxy/createProxyAuthRouteHandlers.ts``.

The app runs with a fake clock, the fake key endpoints behind ``httpx2.MockTransport``, an
in-memory catalog, and a test client whose peer address is set explicitly (``PROXY_PEER``
is a trusted proxy of ``oauth2Proxy`` and ``azureEasyAuth``; Starlette's default peer,
``"testclient"``, is no address at all).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from connexion import AsyncApp
from starlette.testclient import TestClient

from app.config.validation import ConfigError
from tests.fakes.proxy_keys import DELETE, ProxyKeyServer, unsigned_jwt
from tests.proxy.helpers import (
    OUTSIDE_PEER,
    PROVIDERS_CONFIG,
    PROXY_PEER,
    alb,
    build,
    cf,
    client,
    config,
    entra_id_token,
    iap,
    token_claims,
)

JANE_IDENTITY = {
    "type": "user",
    "userEntityRef": "user:default/jane",
    "ownershipEntityRefs": ["user:default/jane", "group:default/engineering"],
}


@pytest.fixture
def app(server: ProxyKeyServer) -> AsyncApp:
    return build(server)


# Building the app takes a while: tests that leave the key server alone share one.
@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[ProxyKeyServer, TestClient]]:
    server = ProxyKeyServer()
    with client(build(server)) as c:
        yield server, c


@pytest.fixture
def own_http(app: AsyncApp) -> Iterator[TestClient]:
    with client(app) as c:
        yield c


@pytest.fixture
def http(shared: tuple[ProxyKeyServer, TestClient]) -> TestClient:
    return shared[1]


@pytest.fixture
def keys(shared: tuple[ProxyKeyServer, TestClient]) -> ProxyKeyServer:
    return shared[0]


def _error(response: Any, status: int, name: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["name"] == name
    assert body["response"] == {"statusCode": status}
    message: str = body["error"]["message"]
    return message


def _signed_in_as_jane(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    body: dict[str, Any] = response.json()
    assert body["backstageIdentity"]["identity"] == JANE_IDENTITY
    claims = token_claims(body["backstageIdentity"]["token"])
    assert claims["sub"] == "user:default/jane"
    return body


# -- every provider signs in ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_awsalb(http: TestClient, keys: ProxyKeyServer, method: str) -> None:
    headers = {"x-amzn-oidc-data": keys.alb_token(), "x-amzn-oidc-accesstoken": "alb-at"}
    body = _signed_in_as_jane(http.request(method, "/api/auth/awsalb/refresh", headers=headers))
    assert body["profile"] == {
        "email": "jane@example.com",
        "displayName": "Jane Doe",
        "picture": "https://example.com/jane.png",
    }
    assert body["providerInfo"] == {"accessToken": "alb-at", "expiresInSeconds": 120}


def test_gcp_iap(http: TestClient, keys: ProxyKeyServer) -> None:
    headers = {"x-goog-iap-jwt-assertion": keys.iap_token()}
    body = _signed_in_as_jane(http.get("/api/auth/gcpIap/refresh", headers=headers))
    assert body["profile"] == {"email": "jane@example.com"}
    assert body["providerInfo"]["iapToken"]["sub"] == "accounts.google.com:1122334455"


def test_cfaccess_user(http: TestClient, keys: ProxyKeyServer) -> None:
    token = keys.cf_token()
    response = http.get(
        "/api/auth/cfaccess/refresh", headers={"Cookie": f"CF_Authorization={token}"}
    )
    body = _signed_in_as_jane(response)
    assert body["profile"] == {"email": "jane@example.com", "displayName": "Jane Doe"}
    info = body["providerInfo"]
    assert list(info) == ["claims", "cfIdentity", "expiresInSeconds", "token"]
    assert info["token"] == token
    assert info["expiresInSeconds"] == 3600


def test_cfaccess_service_token(http: TestClient, keys: ProxyKeyServer) -> None:
    headers = {"cf-access-jwt-assertion": keys.cf_token(service_token="ci-bot.access")}
    response = http.get("/api/auth/cfaccess/refresh", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == {"email": "ci-bot@example.com", "displayName": "Bot"}
    assert body["backstageIdentity"]["identity"]["userEntityRef"] == "user:default/ci-bot"


def test_oauth2_proxy(http: TestClient) -> None:
    id_token = unsigned_jwt({"sub": "jane"})
    headers = {
        "X-Forwarded-User": "jane",
        "X-Forwarded-Email": "jane@example.com",
        "X-OAUTH2-PROXY-ID-TOKEN": f"Bearer {id_token}",
    }
    body = _signed_in_as_jane(http.get("/api/auth/oauth2Proxy/refresh", headers=headers))
    assert body["profile"] == {"email": "jane@example.com", "displayName": "jane"}
    assert body["providerInfo"] == {"accessToken": id_token}


def test_azure_easyauth(http: TestClient) -> None:
    headers = {
        "x-ms-token-aad-id-token": entra_id_token(),
        "x-ms-token-aad-access-token": "aad-at",
    }
    body = _signed_in_as_jane(http.get("/api/auth/azureEasyAuth/refresh", headers=headers))
    assert body["profile"] == {"email": "jane@example.com", "displayName": "Jane Doe"}
    assert body["providerInfo"] == {"accessToken": "aad-at"}


def test_env_and_scope_queries_are_ignored(http: TestClient, keys: ProxyKeyServer) -> None:
    headers = {"x-goog-iap-jwt-assertion": keys.iap_token()}
    response = http.get("/api/auth/gcpIap/refresh?env=nope&scope=a%20b&optional", headers=headers)
    _signed_in_as_jane(response)


# -- missing headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ("awsalb", "Missing ALB OIDC header: x-amzn-oidc-data"),
        ("gcpIap", "Missing Google IAP header: x-goog-iap-jwt-assertion"),
        ("cfaccess", "Missing cf-access-jwt-assertion and CF_Authorization from Cloudflare Access"),
        ("azureEasyAuth", "Missing x-ms-token-aad-id-token header"),
    ],
)
def test_a_missing_header_is_401_naming_it(http: TestClient, provider: str, message: str) -> None:
    response = http.get(f"/api/auth/{provider}/refresh")
    assert _error(response, 401, "AuthenticationError") == message
    assert response.json()["request"] == {"method": "GET", "url": f"/{provider}/refresh"}


def test_oauth2_proxy_without_a_user_header_is_401(http: TestClient) -> None:
    response = http.get("/api/auth/oauth2Proxy/refresh")
    message = _error(response, 401, "AuthenticationError")
    assert message == "Request did not contain a user (no x-forwarded-user header)"


# -- refused assertions -----------------------------------------------------------------------


CASES: list[tuple[str, Any, str]] = [
    ("awsalb", lambda s: alb(s, key=s.foreign_ec), "has an invalid signature"),
    ("awsalb", lambda s: alb(s, claims={"exp": s.now - 600}), "has expired"),
    ("awsalb", lambda s: alb(s, claims={"iss": "https://evil"}), "wrong issuer"),
    ("awsalb", lambda s: alb(s, header={"signer": "arn:other"}), "not by the configured ALB"),
    ("awsalb", lambda s: alb(s, claims={"email": DELETE}), "has no email claim"),
    ("awsalb", lambda s: alb(s, header={"alg": "HS256"}), "only ES256 is accepted"),
    ("gcpIap", lambda s: iap(s, key=s.foreign_ec), "has an invalid signature"),
    ("gcpIap", lambda s: iap(s, claims={"exp": s.now - 600}), "has expired"),
    ("gcpIap", lambda s: iap(s, claims={"aud": "/projects/0/apps/x"}), "wrong audience"),
    ("gcpIap", lambda s: iap(s, claims={"iss": "https://accounts.google.com"}), "wrong issuer"),
    ("gcpIap", lambda s: iap(s, claims={"email": DELETE}), "missing email claim"),
    ("gcpIap", lambda s: iap(s, header={"alg": "none"}), "only ES256 is accepted"),
    ("cfaccess", lambda s: cf(s, key=s.foreign_rsa), "has an invalid signature"),
    ("cfaccess", lambda s: cf(s, claims={"exp": s.now - 600}), "has expired"),
    ("cfaccess", lambda s: cf(s, claims={"aud": ["other-app"]}), "wrong audience"),
    ("cfaccess", lambda s: cf(s, claims={"iss": "https://x.cloudflareaccess.com"}), "wrong issuer"),
    ("cfaccess", lambda s: cf(s, service_token="stranger"), "not a permitted Service Token"),
    ("azureEasyAuth", lambda s: {"x-ms-token-aad-id-token": entra_id_token(ver="1.0")}, "2.0"),
]


@pytest.mark.parametrize(
    ("provider", "headers_of", "message"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES]
)
def test_refused_assertions_are_401_with_a_clear_message(
    http: TestClient, keys: ProxyKeyServer, provider: str, headers_of: Any, message: str
) -> None:
    response = http.get(f"/api/auth/{provider}/refresh", headers=headers_of(keys))
    assert message in _error(response, 401, "AuthenticationError")


def test_an_unreachable_key_endpoint_is_503(own_http: TestClient, server: ProxyKeyServer) -> None:
    server.fail("iap", "network")
    response = own_http.get("/api/auth/gcpIap/refresh", headers=iap(server))
    assert "Google IAP public keys" in _error(response, 503, "ServiceUnavailableError")


def test_a_signed_in_user_missing_from_the_catalog_is_refused(
    http: TestClient, keys: ProxyKeyServer
) -> None:
    headers = iap(keys, claims={"sub": "accounts.google.com:999"})
    response = http.get("/api/auth/gcpIap/refresh", headers=headers)
    assert "unable to resolve user identity" in _error(response, 500, "Error")


def test_keys_are_fetched_once_across_requests(
    own_http: TestClient, server: ProxyKeyServer
) -> None:
    for _ in range(3):
        assert own_http.get("/api/auth/gcpIap/refresh", headers=iap(server)).status_code == 200
        assert own_http.get("/api/auth/awsalb/refresh", headers=alb(server)).status_code == 200
    assert len(server.requests_to("iap")) == 1
    assert len(server.requests_to("alb")) == 1


# -- trusted peers ----------------------------------------------------------------------------

OAUTH2 = {"X-Forwarded-User": "jane"}


def _azure() -> dict[str, str]:
    return {"x-ms-token-aad-id-token": entra_id_token()}


@pytest.mark.parametrize(
    ("provider", "headers"), [("oauth2Proxy", OAUTH2), ("azureEasyAuth", None)]
)
@pytest.mark.parametrize("peer", [OUTSIDE_PEER, "testclient"])
def test_header_trusting_providers_refuse_other_peers(
    app: AsyncApp, provider: str, headers: dict[str, str] | None, peer: str
) -> None:
    with client(app, peer) as c:
        response = c.get(f"/api/auth/{provider}/refresh", headers=headers or _azure())
    message = _error(response, 401, "AuthenticationError")
    assert f"'auth.providers.{provider}.trustedProxies'" in message
    assert peer in message


@pytest.mark.parametrize("provider", ["oauth2Proxy", "azureEasyAuth"])
def test_without_trusted_proxies_header_trusting_providers_refuse_everyone(
    server: ProxyKeyServer, provider: str
) -> None:
    providers = {
        provider: {k: v for k, v in PROVIDERS_CONFIG[provider].items() if k != "trustedProxies"}
    }
    with client(build(server, config(providers))) as c:
        response = c.get(f"/api/auth/{provider}/refresh", headers=OAUTH2 | _azure())
    message = _error(response, 401, "AuthenticationError")
    assert f"'auth.providers.{provider}.trustedProxies', and none is configured" in message


def test_forwarded_for_cannot_impersonate_a_trusted_proxy(server: ProxyKeyServer) -> None:
    # The load balancer in front is trusted for X-Forwarded-For; the client claims to be
    # the OAuth2 Proxy's address. The provider still sees the direct peer.
    raw = config(trustedProxies=["203.0.113.0/24"])
    with client(build(server, raw), OUTSIDE_PEER) as c:
        headers = {**OAUTH2, "X-Forwarded-For": PROXY_PEER}
        response = c.get("/api/auth/oauth2Proxy/refresh", headers=headers)
    assert OUTSIDE_PEER in _error(response, 401, "AuthenticationError")


def test_a_trusted_proxy_behind_forwarded_for_is_still_the_peer(server: ProxyKeyServer) -> None:
    # backend.trustedProxies rewrites the client address; the provider checks the peer.
    raw = config(trustedProxies=["10.0.0.0/8"])
    with client(build(server, raw), PROXY_PEER) as c:
        headers = {**OAUTH2, "X-Forwarded-For": OUTSIDE_PEER}
        response = c.get("/api/auth/oauth2Proxy/refresh", headers=headers)
    _signed_in_as_jane(response)


def test_signed_providers_do_not_care_about_the_peer(app: AsyncApp, server: ProxyKeyServer) -> None:
    with client(app, "testclient") as c:
        assert c.get("/api/auth/gcpIap/refresh", headers=iap(server)).status_code == 200


# -- startup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(PROVIDERS_CONFIG))
def test_a_proxy_provider_without_sign_in_resolvers_does_not_start(
    server: ProxyKeyServer, provider: str
) -> None:
    providers = {provider: {k: v for k, v in PROVIDERS_CONFIG[provider].items() if k != "signIn"}}
    with pytest.raises(ConfigError) as info:
        build(server, config(providers))
    assert str(info.value) == f"No sign-in resolver configured for proxy auth provider '{provider}'"


def test_an_unknown_resolver_name_does_not_start(server: ProxyKeyServer) -> None:
    providers = {
        "gcpIap": {**PROVIDERS_CONFIG["gcpIap"], "signIn": {"resolvers": [{"resolver": "nope"}]}}
    }
    with pytest.raises(ConfigError, match="Sign-in resolver 'nope' is not available"):
        build(server, config(providers))


def test_the_providers_work_across_lifespans(app: AsyncApp, server: ProxyKeyServer) -> None:
    for _ in range(2):
        with client(app) as c:
            assert c.get("/api/auth/awsalb/refresh", headers=alb(server)).status_code == 200
            assert c.get("/api/auth/cfaccess/refresh", headers=cf(server)).status_code == 200
