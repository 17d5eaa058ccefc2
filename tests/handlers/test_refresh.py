"""GET|POST /api/auth/<id>/refresh (protocol reference section 4)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.app_factory import AUTH_BASE_URL, JarlessClient
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import (
    EXPIRES_IN,
    ID_TOKEN,
    REFRESH_TOKEN,
    TOKEN_SCOPE,
    StubAuthenticator,
)

from .helpers import XRW, assert_json_error, cookie_header, set_cookies, sign_in

REFRESH = "/api/auth/stub/refresh"
IDENTITY = {
    "type": "user",
    "userEntityRef": "user:default/jane.doe",
    "ownershipEntityRefs": ["user:default/jane.doe"],
}


def refresh(
    client: JarlessClient,
    jar: dict[str, str] | None,
    *,
    method: str = "GET",
    provider: str = "stub",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    return client.request(
        method,
        f"/api/auth/{provider}/refresh",
        params={"env": "development", **(params or {})},
        headers={**XRW, **(cookie_header(jar) if jar else {}), **(headers or {})},
    )


def refresh_failure(cause: dict[str, Any], url: str = "/stub/refresh?env=development") -> Any:
    return {
        "error": {
            "name": "AuthenticationError",
            "message": f"Refresh failed; caused by {cause['name']}: {cause['message']}",
            "cause": cause,
        },
        "request": {"method": "GET", "url": url},
        "response": {"statusCode": 401},
    }


# -- CSRF header and env ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"X-Requested-With": "xmlhttprequest"}, {"X-Requested-With": "fetch"}]
)
def test_requires_x_requested_with(client: JarlessClient, headers: dict[str, str]) -> None:
    jar = sign_in(client)
    response = client.get(
        REFRESH, params={"env": "development"}, headers={**cookie_header(jar), **headers}
    )
    assert response.json() == {
        "error": {"name": "AuthenticationError", "message": "Invalid X-Requested-With header"},
        "request": {"method": "GET", "url": "/stub/refresh?env=development"},
        "response": {"statusCode": 401},
    }
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_header_name_is_case_insensitive(client: JarlessClient) -> None:
    jar = sign_in(client)
    response = client.get(
        REFRESH,
        params={"env": "development"},
        headers={"x-requested-with": "XMLHttpRequest", **cookie_header(jar)},
    )
    assert response.status_code == 200


def test_env_is_checked_before_the_header(client: JarlessClient) -> None:
    response = client.get(REFRESH, params={"optional": ""})
    assert_json_error(response, 400, "InputError", "Must specify 'env' query to select environment")


def test_missing_session_cookie_exact_body(client: JarlessClient) -> None:
    response = client.get("/api/auth/stub/refresh?optional&env=development", headers=XRW)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.content == (
        b'{"error":{"name":"AuthenticationError","message":"Refresh failed; caused by '
        b'InputError: Missing session cookie","cause":{"name":"InputError","message":'
        b'"Missing session cookie"}},"request":{"method":"GET","url":'
        b'"/stub/refresh?optional&env=development"},"response":{"statusCode":401}}'
    )


# -- success ---------------------------------------------------------------------------


def test_success_body(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    jar = sign_in(client)
    response = refresh(client, jar)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert list(body) == ["profile", "providerInfo", "backstageIdentity"]
    assert body["profile"] == {
        "email": "jane.doe@example.com",
        "displayName": "Jane Doe",
        "picture": "http://idp.invalid/jane.png",
    }
    assert list(body["providerInfo"].items()) == [
        ("idToken", ID_TOKEN),
        ("accessToken", "AT2"),
        ("scope", TOKEN_SCOPE),
        ("expiresInSeconds", EXPIRES_IN),
    ]
    assert body["backstageIdentity"]["identity"] == IDENTITY
    assert body["backstageIdentity"]["expiresInSeconds"] == 3600
    # The IdP got the plain refresh token back out of the sealed cookie.
    [call] = stub_auth.refreshes
    assert call.refresh_token == REFRESH_TOKEN
    assert call.scope == ""
    assert call.scope_already_granted is None
    # An unchanged refresh token is not rewritten.
    assert "set-cookie" not in response.headers


def test_token_verifies_against_jwks(client: JarlessClient, clock: FakeClock) -> None:
    body = refresh(client, sign_in(client)).json()
    token = body["backstageIdentity"]["token"]
    jwks = client.get("/api/auth/.well-known/jwks.json").json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.header["typ"] == "vnd.backstage.user"
    assert decoded.header["alg"] == "ES256"
    assert decoded.header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = decoded.claims
    assert claims["iss"] == AUTH_BASE_URL
    assert claims["sub"] == "user:default/jane.doe"
    assert claims["aud"] == "backstage"
    assert claims["iat"] == int(clock.now())
    assert claims["exp"] == int(clock.now()) + 3600
    assert "ent" not in claims  # auth.omitIdentityTokenOwnershipClaim defaults to true
    assert isinstance(claims["uip"], str) and claims["uip"]
    jwt.JWTClaimsRegistry(
        now=int(clock.now()), exp={"essential": True}, sub={"essential": True}
    ).validate(claims)


def test_post_refresh(client: JarlessClient) -> None:
    response = refresh(client, sign_in(client), method="POST")
    assert response.status_code == 200
    assert response.json()["backstageIdentity"]["identity"] == IDENTITY


def test_optional_flag_is_ignored(client: JarlessClient) -> None:
    jar = sign_in(client)
    response = client.get(
        "/api/auth/stub/refresh?optional&env=development", headers={**XRW, **cookie_header(jar)}
    )
    assert response.status_code == 200


def test_without_sign_in_resolver(client: JarlessClient) -> None:
    jar = sign_in(client, env="nosignin")
    response = refresh(client, jar, params={"env": "nosignin"})
    assert response.status_code == 200
    assert list(response.json()) == ["profile", "providerInfo"]


def test_origin_header_is_not_validated(client: JarlessClient) -> None:
    response = refresh(client, sign_in(client), headers={"Origin": "http://evil.test"})
    assert response.status_code == 200


# -- rotation --------------------------------------------------------------------------


def test_rotation_sets_a_new_cookie(
    client: JarlessClient, stub_auth: StubAuthenticator, clock: FakeClock
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "rotate"
    response = refresh(client, jar)
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert [(c.name, bool(c.value)) for c in cookies] == [
        ("stub-refresh-token", False),  # legacy Domain cleanup
        ("stub-refresh-token", True),
    ]
    new = cookies[1]
    assert new.attr("Max-Age") == "86400000"
    assert new.attr("Path") == "/api/auth/stub"
    assert new.value != jar["stub-refresh-token"]
    # The new cookie carries the rotated token to the next refresh.
    stub_auth.refresh_mode = "keep"
    clock.advance(60)  # past any grace window of the first refresh
    assert refresh(client, {"stub-refresh-token": new.value}).status_code == 200
    assert stub_auth.refreshes[-1].refresh_token == f"{REFRESH_TOKEN}-rotated-1"


def test_no_refresh_token_in_result_keeps_the_cookie(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "none"
    response = refresh(client, jar)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


def test_rotated_cookie_uses_origin_header_for_samesite(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "rotate"
    response = refresh(client, jar, headers={"Origin": "http://localhost:3000"})
    assert set_cookies(response)[1].attr("SameSite") == "Lax"


# -- chunked cookies (section 6.3) -----------------------------------------------------


def test_chunked_cookie_is_read(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    sealed = sign_in(client)["stub-refresh-token"]
    third = len(sealed) // 3
    jar = {
        "stub-refresh-token-0": sealed[:third],
        "stub-refresh-token-1": sealed[third : 2 * third],
        "stub-refresh-token-2": sealed[2 * third :],
    }
    response = refresh(client, jar)
    assert response.status_code == 200, response.text
    assert stub_auth.refreshes[-1].refresh_token == REFRESH_TOKEN


def test_chunks_win_over_the_plain_cookie(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    sealed = sign_in(client)["stub-refresh-token"]
    jar = {"stub-refresh-token": "garbage", "stub-refresh-token-0": sealed}
    assert refresh(client, jar).status_code == 200


def test_long_session_round_trip(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.refresh_token_out = "y" * 5000
    jar = sign_in(client)
    assert "stub-refresh-token" not in jar
    assert {"stub-refresh-token-0", "stub-refresh-token-1"} <= set(jar)
    stub_auth.refresh_mode = "rotate"
    response = refresh(client, jar)
    assert response.status_code == 200, response.text
    assert stub_auth.refreshes[-1].refresh_token == "y" * 5000
    written = [c.name for c in set_cookies(response) if c.value]
    assert written[:2] == ["stub-refresh-token-0", "stub-refresh-token-1"]
    assert "stub-refresh-token" not in written


def test_chunked_to_plain_clears_stale_chunks(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    sealed = sign_in(client)["stub-refresh-token"]
    half = len(sealed) // 2
    jar = {"stub-refresh-token-0": sealed[:half], "stub-refresh-token-1": sealed[half:]}
    stub_auth.refresh_mode = "rotate"
    response = refresh(client, jar)
    assert response.status_code == 200
    written = [(c.name, c.value != "", c.attr("Max-Age")) for c in set_cookies(response)]
    assert ("stub-refresh-token", True, "86400000") in written
    assert ("stub-refresh-token-0", False, "0") in written
    assert ("stub-refresh-token-1", False, "0") in written


# -- failures: 401 with the cause (section 4.3) ----------------------------------------


def test_provider_rejects_refresh_token(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "auth_error"
    response = refresh(client, jar)
    assert response.status_code == 401
    assert response.json() == refresh_failure(
        {"name": "AuthenticationError", "message": "Refresh token is invalid"}
    )


def test_provider_unreachable(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "upstream_error"
    response = refresh(client, jar)
    assert response.status_code == 401
    assert response.json() == refresh_failure(
        {
            "name": "ServiceUnavailableError",
            "message": "Failed to refresh access token, the identity provider is down",
        }
    )


def test_provider_crash_is_a_plain_error_cause(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client)
    stub_auth.refresh_mode = "crash"
    response = refresh(client, jar)
    assert response.status_code == 401
    assert response.json() == refresh_failure({"name": "Error", "message": "stub exploded"})


@pytest.mark.parametrize("value", ["garbage", "RT1", "a.b.c.d.e"])
def test_forged_cookie_never_reaches_the_provider(
    client: JarlessClient, stub_auth: StubAuthenticator, value: str
) -> None:
    response = refresh(client, {"stub-refresh-token": value})
    assert response.status_code == 401
    assert response.json()["error"]["cause"]["name"] == "AuthenticationError"
    assert stub_auth.refreshes == []


def test_cookie_of_another_env_is_refused(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    jar = sign_in(client, env="nosignin")
    response = refresh(client, {"stub-refresh-token": jar["stub-refresh-token"]})
    assert response.status_code == 401
    assert stub_auth.refreshes == []


def test_cookie_of_another_provider_is_refused(client: JarlessClient) -> None:
    jar = sign_in(client, "stubpersist", scope="repo")
    response = refresh(client, {"stub-refresh-token": jar["stubpersist-refresh-token"]})
    assert response.status_code == 401


def test_unknown_env(client: JarlessClient) -> None:
    response = refresh(client, None, params={"env": "staging"})
    assert_json_error(
        response,
        404,
        "NotFoundError",
        "No configuration available for the 'staging' environment of this provider.",
    )


# -- scope persistence -----------------------------------------------------------------


def test_persisting_provider_scope_already_granted(
    client: JarlessClient, persist_auth: StubAuthenticator
) -> None:
    jar = sign_in(client, "stubpersist", scope="repo")
    assert jar["stubpersist-granted-scope"] == "repo%20openid"
    response = refresh(client, jar, provider="stubpersist", params={"scope": "repo"})
    assert response.status_code == 200
    [call] = persist_auth.refreshes
    assert call.scope == "repo openid"
    assert call.scope_already_granted is True
    assert response.json()["providerInfo"]["scope"] == "repo openid"
    granted = [c for c in set_cookies(response) if c.value]
    assert [(c.name, c.value) for c in granted] == [("stubpersist-granted-scope", "repo%20openid")]


def test_persisting_provider_more_scope(
    client: JarlessClient, persist_auth: StubAuthenticator
) -> None:
    jar = sign_in(client, "stubpersist", scope="repo")
    response = refresh(client, jar, provider="stubpersist", params={"scope": "admin"})
    assert response.status_code == 200
    [call] = persist_auth.refreshes
    assert call.scope == "admin repo openid"
    assert call.scope_already_granted is False
    granted = [c for c in set_cookies(response) if c.value]
    assert [(c.name, c.value) for c in granted] == [
        ("stubpersist-granted-scope", "admin%20repo%20openid")
    ]


# -- absolute session lifetime -----------------------------------------------------------


def test_a_session_past_its_lifetime_is_refused(client: JarlessClient, clock: FakeClock) -> None:
    # No sessionDuration: the cookie's 1000 days are the session's absolute lifetime too.
    jar = sign_in(client)
    clock.advance(999 * 86400)
    assert refresh(client, jar).status_code == 200
    clock.advance(2 * 86400)
    response = refresh(client, jar)
    assert response.json() == refresh_failure(
        {"name": "AuthenticationError", "message": "Session expired"}
    )
