"""GET /api/auth/<id>/start (protocol reference section 2)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest

from app.providers.oauth2_base import UpstreamError
from tests.fakes.app_factory import JarlessClient, build_app, config, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import IDP_AUTHORIZE_URL, StubAuthenticator, StubProvider

from .helpers import (
    APP_ORIGIN,
    assert_json_error,
    decode_state,
    http_date,
    location_query,
    set_cookies,
    start,
)

START = "/api/auth/stub/start"


def test_redirects_to_the_identity_provider(
    client: JarlessClient, stub_auth: StubAuthenticator
) -> None:
    response = client.get(
        START, params={"env": "development", "scope": "openid", "origin": APP_ORIGIN}
    )
    assert response.status_code == 302
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    location = response.headers["location"]
    assert location.startswith(IDP_AUTHORIZE_URL + "?")
    query = location_query(response)
    assert query["client_id"] == "stub-client"
    assert query["redirect_uri"] == "http://localhost:7007/api/auth/stub/handler/frame"
    assert query["scope"] == "openid"
    # What the authenticator was asked for.
    [call] = stub_auth.starts
    assert call.state == query["state"]
    assert call.scope == "openid"
    assert call.callback_url == "http://localhost:7007/api/auth/stub/handler/frame"


def test_nonce_cookie_attributes(client: JarlessClient, clock: FakeClock) -> None:
    response = client.get(START, params={"env": "development"})
    legacy, nonce = set_cookies(response)
    # Legacy-domain cleanup first (default cookie configurer), on the base path.
    assert legacy.name == "stub-nonce"
    assert legacy.value == ""
    assert legacy.attribute_names == [
        "Max-Age",
        "Domain",
        "Path",
        "Expires",
        "HttpOnly",
        "SameSite",
    ]
    assert legacy.attr("Max-Age") == "0"
    assert legacy.attr("Domain") == "localhost"
    assert legacy.attr("Path") == "/api/auth/stub"
    assert legacy.attr("SameSite") == "Lax"
    # The nonce: host-only, Max-Age 600, Path <base>/handler, HttpOnly, Lax, not Secure.
    assert nonce.name == "stub-nonce"
    assert nonce.attribute_names == ["Max-Age", "Path", "Expires", "HttpOnly", "SameSite"]
    assert nonce.attr("Max-Age") == "600"
    assert nonce.attr("Path") == "/api/auth/stub/handler"
    assert nonce.attr("Expires") == http_date(clock.now() + 600)
    assert nonce.attr("SameSite") == "Lax"
    # Standard base64 of 16 random bytes, URI-encoded on the wire.
    raw = unquote(nonce.value)
    assert len(raw) == 24 and raw.endswith("==")
    assert len(base64.b64decode(raw, validate=True)) == 16
    assert "%3D%3D" in nonce.value


def test_state_carries_nonce_env_origin_flow(client: JarlessClient) -> None:
    started = start(client, origin=APP_ORIGIN, flow="popup", scope="openid")
    fields = decode_state(started.state)
    # Backstage's field order; no scope for a provider that does not persist scopes.
    assert [k for k, _ in fields] == ["nonce", "env", "origin", "flow"]
    state = dict(fields)
    assert state["nonce"] == unquote(started.nonce_cookie)
    assert state["env"] == "development"
    assert state["origin"] == APP_ORIGIN
    assert state["flow"] == "popup"


def test_minimal_state_has_only_nonce_and_env(client: JarlessClient) -> None:
    started = start(client)
    assert [k for k, _ in decode_state(started.state)] == ["nonce", "env"]


def test_each_start_has_a_fresh_nonce(client: JarlessClient) -> None:
    assert start(client).nonce_cookie != start(client).nonce_cookie


def test_origin_is_normalized_to_url_origin(client: JarlessClient) -> None:
    started = start(client, origin="HTTP://LOCALHOST:3000/some/path?x=1")
    assert dict(decode_state(started.state))["origin"] == APP_ORIGIN


def test_extra_allowed_origin(client: JarlessClient) -> None:
    started = start(client, origin="https://app.example.com")
    assert dict(decode_state(started.state))["origin"] == "https://app.example.com"


def test_persisting_provider_puts_scope_in_state(client: JarlessClient) -> None:
    started = start(client, "stubpersist", scope="repo", origin=APP_ORIGIN, flow="popup")
    fields = decode_state(started.state)
    assert [k for k, _ in fields] == ["nonce", "env", "origin", "flow", "scope"]
    # requested ∪ required, order kept, space-joined.
    assert dict(fields)["scope"] == "repo openid"
    assert location_query(started.response)["scope"] == "repo openid"
    # Form encoding: spaces as '+'.
    assert "scope=repo+openid" in bytes.fromhex(started.state).decode()


def test_persisting_provider_merges_granted_scope_cookie(client: JarlessClient) -> None:
    response = client.get(
        "/api/auth/stubpersist/start",
        params={"env": "development", "scope": "repo,read:user"},
        headers={"Cookie": "stubpersist-granted-scope=admin%20repo"},
    )
    assert response.status_code == 302
    assert location_query(response)["scope"] == "repo read:user admin openid"
    assert dict(decode_state(location_query(response)["state"]))["scope"] == (
        "repo read:user admin openid"
    )


def test_non_persisting_provider_ignores_granted_scope_cookie(client: JarlessClient) -> None:
    response = client.get(
        START,
        params={"env": "development", "scope": "a|b"},
        headers={"Cookie": "stub-granted-scope=admin"},
    )
    assert location_query(response)["scope"] == "a b"


def test_redirect_flow_state(client: JarlessClient) -> None:
    started = start(
        client, flow="redirect", redirectUrl="http://localhost:3000/catalog?x=1", origin=APP_ORIGIN
    )
    fields = decode_state(started.state)
    assert [k for k, _ in fields] == ["nonce", "env", "origin", "redirectUrl", "flow"]
    assert dict(fields)["redirectUrl"] == "http://localhost:3000/catalog?x=1"


# -- errors (JSON, section 2.2) ---------------------------------------------------------


def test_missing_env(client: JarlessClient) -> None:
    response = client.get(START)
    assert response.json() == {
        "error": {
            "name": "InputError",
            "message": "Must specify 'env' query to select environment",
        },
        "request": {"method": "GET", "url": "/stub/start"},
        "response": {"statusCode": 400},
    }
    assert response.status_code == 400
    assert "set-cookie" not in response.headers


def test_unknown_env(client: JarlessClient) -> None:
    response = client.get(START, params={"env": "staging"})
    assert_json_error(
        response,
        404,
        "NotFoundError",
        "No configuration available for the 'staging' environment of this provider.",
        url="/stub/start?env=staging",
    )


def test_env_is_checked_before_origin(client: JarlessClient) -> None:
    # Without env, the missing env is the error reported, not the refused origin.
    response = client.get(START, params={"origin": "http://evil.test"})
    assert_json_error(response, 400, "InputError", "Must specify 'env' query to select environment")
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("origin", ["not-a-url", "http://", "localhost:3000"])
def test_unparsable_origin(client: JarlessClient, origin: str) -> None:
    response = client.get(START, params={"env": "development", "origin": origin})
    assert_json_error(response, 400, "InputError", "App origin is invalid, failed to parse")
    assert "set-cookie" not in response.headers


def test_an_origin_without_a_tuple_origin_is_null_and_refused(client: JarlessClient) -> None:
    # new URL('ftp://localhost:3000').origin is "null" in Backstage too.
    response = client.get(START, params={"env": "development", "origin": "ftp://localhost:3000"})
    assert_json_error(response, 403, "NotAllowedError", "Origin 'null' is not allowed")


@pytest.mark.parametrize(
    ("origin", "shown"),
    [
        ("http://evil.test", "http://evil.test"),
        ("http://localhost:3001", "http://localhost:3001"),
        ("https://localhost:3000", "https://localhost:3000"),
        # A wildcard stays inside one DNS label.
        ("https://a.b.example.com", "https://a.b.example.com"),
        ("https://app.example.com.evil.test", "https://app.example.com.evil.test"),
    ],
)
def test_disallowed_origin(client: JarlessClient, origin: str, shown: str) -> None:
    response = client.get(START, params={"env": "development", "origin": origin})
    assert_json_error(response, 403, "NotAllowedError", f"Origin '{shown}' is not allowed")


def test_redirect_flow_without_redirect_url(client: JarlessClient) -> None:
    response = client.get(START, params={"env": "development", "flow": "redirect"})
    assert_json_error(
        response,
        400,
        "InputError",
        "No redirectUrl provided in request query parameters",
        url="/stub/start?env=development&flow=redirect",
    )


def test_redirect_flow_unparsable_redirect_url(client: JarlessClient) -> None:
    response = client.get(
        START, params={"env": "development", "flow": "redirect", "redirectUrl": "catalog"}
    )
    assert_json_error(response, 400, "InputError", "Redirect URL is invalid, failed to parse")


@pytest.mark.parametrize(
    "url", ["http://evil.test/catalog", "javascript:alert(1)", "https://localhost:3000/"]
)
def test_redirect_flow_disallowed_redirect_url(client: JarlessClient, url: str) -> None:
    response = client.get(
        START, params={"env": "development", "flow": "redirect", "redirectUrl": url}
    )
    assert_json_error(response, 403, "NotAllowedError", "Redirect URL is not an allowed origin")


def test_popup_flow_ignores_redirect_url(client: JarlessClient) -> None:
    response = client.get(
        START, params={"env": "development", "flow": "popup", "redirectUrl": "http://evil.test"}
    )
    assert response.status_code == 302


def test_origin_is_checked_before_redirect_url(client: JarlessClient) -> None:
    response = client.get(
        START, params={"env": "development", "origin": "http://evil.test", "flow": "redirect"}
    )
    assert_json_error(response, 403, "NotAllowedError", "Origin 'http://evil.test' is not allowed")


def test_provider_failure_is_json(client: JarlessClient, stub_auth: StubAuthenticator) -> None:
    stub_auth.start_error = UpstreamError("Failed to discover the issuer")
    response = client.get(START, params={"env": "development"})
    assert_json_error(response, 503, "ServiceUnavailableError", "Failed to discover the issuer")
    assert "set-cookie" not in response.headers


# -- cookie attributes across sites (section 6.2) ----------------------------------------


@pytest.fixture
def https_client(clock: FakeClock) -> Iterator[JarlessClient]:
    raw = config()
    raw["app"] = {"baseUrl": "https://app.example.com"}
    raw["backend"] = {"baseUrl": "https://api.example.net"}
    raw["auth"]["experimentalExtraAllowedOrigins"] = ["https://api.example.net"]
    app = build_app(
        clock=clock,
        stub=StubProvider(),
        stub_persist=StubProvider(persist_scopes=True),
        raw_config=raw,
    )
    with make_client(app) as c:
        yield c


def test_https_cross_site_nonce_cookie_is_secure_samesite_none(
    https_client: JarlessClient,
) -> None:
    response = https_client.get(START, params={"env": "development"})
    legacy, nonce = set_cookies(response)
    assert nonce.attribute_names == [
        "Max-Age",
        "Path",
        "Expires",
        "HttpOnly",
        "Secure",
        "SameSite",
    ]
    assert nonce.attr("SameSite") == "None"
    assert legacy.has("Secure") and legacy.attr("Domain") == "api.example.net"
    query = location_query(response)
    assert urlsplit(query["redirect_uri"]).netloc == "api.example.net"


def test_https_same_site_origin_gets_lax(https_client: JarlessClient) -> None:
    # The origin hint decides SameSite: the backend's own host is same-site.
    response = https_client.get(
        START, params={"env": "development", "origin": "https://api.example.net"}
    )
    _, nonce = set_cookies(response)
    assert nonce.attr("SameSite") == "Lax"
    assert nonce.has("Secure")
