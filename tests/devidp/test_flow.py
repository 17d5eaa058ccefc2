"""The embedded development identity provider end to end, over HTTP: this server started
as a process with the default config (``make run``), signing in with ``oidc`` through
``/start`` → the dev IdP's login page → our callback, then ``/refresh`` and ``/logout``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.cli_server import XHR, CliServer, start_sign_in, submit_login
from tests.support.popup import popup_message, popup_target_origin


@pytest.fixture
def client(dev_server: CliServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=dev_server.base_url, timeout=10.0) as c:
        yield c


def _sign_in(client: httpx2.Client, server: CliServer, form: dict[str, str]) -> dict[str, object]:
    login = start_sign_in(client, server.base_url)
    callback = submit_login(client, server.base_url, login, form)
    assert callback.status_code == 200, callback.text
    assert popup_target_origin(callback.text) == server.base_url
    return popup_message(callback.text)


def test_startup_says_the_dev_idp_is_enabled(dev_server: CliServer) -> None:
    assert (
        f"development identity provider ENABLED at {dev_server.base_url}/dev-idp"
        in dev_server.output
    )
    assert "clients: backstage-dev" in dev_server.output


def test_discovery_and_keys(client: httpx2.Client, dev_server: CliServer) -> None:
    issuer = f"{dev_server.base_url}/dev-idp"
    doc = client.get("/dev-idp/.well-known/openid-configuration").json()
    assert doc["issuer"] == issuer
    assert doc["authorization_endpoint"] == f"{issuer}/authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["revocation_endpoint"] == f"{issuer}/revoke"
    keys = client.get("/dev-idp/jwks").json()["keys"]
    assert [(k["kty"], k["alg"], "d" in k) for k in keys] == [("RSA", "RS256", False)]


def test_sign_in_refresh_logout(client: httpx2.Client, dev_server: CliServer) -> None:
    login = start_sign_in(client, dev_server.base_url)
    # The login page: the demo users, a name field, no password.
    assert "Alice Adams" in login.text and 'name="name"' in login.text
    assert 'type="password"' not in login.text
    assert login.headers["x-frame-options"] == "DENY"

    callback = submit_login(client, dev_server.base_url, login, {"user": "alice"})
    message = popup_message(callback.text)
    assert message["type"] == "authorization_response", message
    response = message["response"]
    assert response["profile"] == {"email": "alice@example.com", "displayName": "Alice Adams"}
    identity = response["backstageIdentity"]["identity"]
    assert identity["userEntityRef"] == "user:default/alice"
    info = response["providerInfo"]
    assert set(info["scope"].split()) == {"openid", "profile", "email", "offline_access"}

    # The ID token is the dev IdP's, RS256, for our client.
    keys = KeySet.import_key_set(client.get("/dev-idp/jwks").json())
    claims = jwt.decode(info["idToken"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == f"{dev_server.base_url}/dev-idp"
    assert claims["aud"] == ["backstage-dev"]
    assert claims["sub"] == "alice"

    refresh_cookie = client.cookies.get("oidc-refresh-token")
    assert refresh_cookie
    refreshed = client.get("/api/auth/oidc/refresh", params={"env": "development"}, headers=XHR)
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["backstageIdentity"]["identity"]["userEntityRef"] == "user:default/alice"
    # The dev IdP rotated its refresh token, so the sealed session cookie was rewritten.
    assert "oidc-refresh-token=" in refreshed.headers.get("set-cookie", "")
    assert client.cookies.get("oidc-refresh-token") != refresh_cookie
    assert body["providerInfo"]["idToken"] != info["idToken"]

    logout = client.post("/api/auth/oidc/logout", params={"env": "development"}, headers=XHR)
    assert logout.status_code == 200, logout.text
    # Logout revoked the refresh token at the dev IdP (RFC 7009), then cleared the cookie.
    # Its access line leaves through the log queue: it may land a moment after the answer.
    deadline = time.monotonic() + 10
    while not re.search(r'"POST /dev-idp/revoke HTTP/1.1" 200', dev_server.output):
        assert time.monotonic() < deadline, dev_server.output
        time.sleep(0.05)
    after = client.get("/api/auth/oidc/refresh", params={"env": "development"}, headers=XHR)
    assert after.status_code == 401


def test_any_typed_name_signs_in(client: httpx2.Client, dev_server: CliServer) -> None:
    message = _sign_in(client, dev_server, {"name": "Dana Scully"})
    response = message["response"]
    assert isinstance(response, dict)
    assert response["profile"]["email"] == "dana.scully@example.com"
    assert response["profile"]["displayName"] == "Dana Scully"
    ref = response["backstageIdentity"]["identity"]["userEntityRef"]
    assert ref == "user:default/dana.scully"


def test_cancel_is_a_rejection_the_popup_reports(
    client: httpx2.Client, dev_server: CliServer
) -> None:
    message = _sign_in(client, dev_server, {"action": "cancel"})
    error = message["error"]
    assert isinstance(error, dict)
    assert error["message"].startswith("Authentication rejected, access_denied"), error


def test_guest_is_served_too(client: httpx2.Client) -> None:
    response = client.get("/api/auth/guest/refresh")
    assert response.status_code == 200, response.text
    assert response.json()["backstageIdentity"]["identity"]["userEntityRef"] == (
        "user:development/guest"
    )


def test_demo_page_lists_the_providers(client: httpx2.Client, dev_server: CliServer) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    island = re.search(
        r'<script id="demo-config" type="application/json">(.*?)</script>', page.text, re.S
    )
    assert island is not None
    config = json.loads(island.group(1))
    assert config["authBaseUrl"] == f"{dev_server.base_url}/api/auth"
    assert config["appOrigin"] == dev_server.base_url
    assert config["devIdp"] == f"{dev_server.base_url}/dev-idp"
    # In config order (this test's config file has its keys sorted).
    assert sorted(config["providers"], key=lambda p: p["id"]) == [
        {"id": "guest", "kind": "proxy"},
        {
            "id": "oidc",
            "kind": "oauth",
            "environments": ["development"],
            "scope": "openid profile email offline_access",
        },
    ]
    script = client.get("/static/demo.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/static/demo.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/static/app.py").status_code in (400, 404)


def test_docs_index_links_every_swagger_ui(client: httpx2.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    links = re.findall(r'href="([^"]*/ui/)"', page.text)
    assert sorted(links[:2]) == ["/api/auth/guest/ui/", "/api/auth/oidc/ui/"]
    assert links[2:] == [
        "/api/auth/.backstage/actions/ui/",
        "/api/auth/identity/ui/",
        "/api/auth/authorization/ui/",
        "/.backstage/health/v1/ui/",
        "/operations/ui/",
        "/pages/ui/",
    ]
    for link in links:
        assert client.get(link).status_code == 200, link
    # Each document at its own URL ("Operations" opened the Pages document when both
    # were at /openapi.json), and the combined one for API clients.
    specs = re.findall(r'href="([^"]*/openapi\.json)"', page.text)
    titles = [client.get(spec).json()["info"]["title"] for spec in specs]
    assert titles[2:] == [
        "Auth API: actions",
        "Auth API: identity",
        "Auth API: authorization server",
        "Health",
        "Operations",
        "Pages",
        "backstage-auth-backend",
    ]
    assert specs[-1] == "/api/auth/openapi.json"
