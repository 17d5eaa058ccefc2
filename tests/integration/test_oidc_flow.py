"""The whole OIDC sign-in against a real OpenID provider process (oidc-provider 9).

This server runs as a real process from a real config file; the "browser" is an httpx
client with a cookie jar that logs in through the provider's own login and consent pages.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from app.oauth.sessions import SessionCodec
from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    end_session_through_confirmation,
    frame_callback,
    free_port,
    login_through_interactions,
    start_openid_provider,
)
from tests.support.popup import popup_message, popup_target_origin
from tests.support.server import AuthServer

pytestmark = pytest.mark.integration

APP_ORIGIN = "http://localhost:3000"
SCOPE = "openid email profile offline_access"
XRW = {"X-Requested-With": "XMLHttpRequest"}
SECRET = "integration-test-secret-of-32-or-more"
SIGNED_OUT = f"{APP_ORIGIN}/signed-out"
ORG = """
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: grace}
spec:
  profile: {email: grace@example.com, displayName: Grace}
  memberOf: [team-a]
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: [], members: [grace]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: guild, namespace: guilds}
spec: {type: guild, children: [], members: [default/grace]}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenIDProvider, AuthServer]]:
    port = free_port()
    op = start_openid_provider(
        clients=[
            backstage_client(
                frame_callback(f"http://localhost:{port}"), post_logout_redirect_uris=[SIGNED_OUT]
            )
        ]
    )
    workdir = tmp_path_factory.mktemp("server")
    (workdir / "org.yaml").write_text(ORG)
    config = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "catalog": {
            "rules": [{"allow": ["User", "Group"]}],
            "locations": [{"type": "file", "target": "./org.yaml"}],
        },
        "auth": {
            "session": {"secret": SECRET, "refreshGracePeriod": "3s"},
            "providers": {
                "oidc": {
                    # Backstage users set prompt: auto for an IdP without a session yet.
                    # Sign-out here also ends the IdP's session (RP-initiated, opt-in).
                    "development": op.environment(
                        federatedLogout=True,
                        postLogoutRedirectUri=SIGNED_OUT,
                    ),
                    # Backstage's sign-out: this app only.
                    "apponly": op.environment(),
                    # Backstage's default prompt=none.
                    "silent": op.environment(prompt=None),
                    # Users must be in the catalog.
                    "catalog": op.environment(
                        signIn={"resolvers": [{"resolver": "emailMatchingUserEntityProfileEmail"}]}
                    ),
                }
            },
        },
    }
    server = AuthServer(config, workdir, port=port)
    try:
        server.start()
        yield op, server
    finally:
        server.stop()
        op.stop()


def _browser() -> httpx2.Client:
    return httpx2.Client(follow_redirects=False, timeout=15.0)


def _sign_in(
    browser: httpx2.Client,
    stack: tuple[OpenIDProvider, AuthServer],
    *,
    login: str,
    env: str = "development",
    **params: str,
) -> httpx2.Response:
    op, server = stack
    start = browser.get(
        f"{server.base_url}/api/auth/oidc/start",
        params={"scope": SCOPE, "origin": APP_ORIGIN, "flow": "popup", "env": env, **params},
    )
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(op.issuer)
    back = login_through_interactions(browser, start.headers["location"], login=login)
    callback = back.headers["location"]
    assert callback.startswith(f"{server.base_url}/api/auth/oidc/handler/frame?")
    return browser.get(callback)


def _refresh(
    browser: httpx2.Client, server: AuthServer, env: str = "development"
) -> httpx2.Response:
    return browser.get(
        f"{server.base_url}/api/auth/oidc/refresh",
        params={"optional": "", "scope": SCOPE, "env": env},
        headers=XRW,
    )


def _idp_refresh_token(sealed: str) -> str:
    """What the sealed session cookie holds (the test knows the server's secret)."""
    codec = SessionCodec([SECRET])
    return codec.open(
        sealed, cookie_name="oidc-refresh-token", provider_id="oidc", env="development"
    ).refresh_token


def _verify_backstage_token(server: AuthServer, token: str) -> dict[str, Any]:
    keys = httpx2.get(f"{server.base_url}/api/auth/.well-known/jwks.json").json()
    decoded = jwt.decode(token, KeySet.import_key_set(keys), algorithms=["ES256"])
    assert decoded.header["typ"] == "vnd.backstage.user"
    return dict(decoded.claims)


def test_popup_sign_in_refresh_and_logout(stack: tuple[OpenIDProvider, AuthServer]) -> None:
    op, server = stack
    op.reset_counts()
    with _browser() as browser:
        page = _sign_in(browser, stack, login="alice")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith("script-src 'sha256-")
        assert popup_target_origin(page.text) == APP_ORIGIN
        message = popup_message(page.text)
        assert message["type"] == "authorization_response", message
        response = message["response"]
        assert response["profile"] == {
            "email": "alice@example.com",
            "displayName": "Alice",
            "picture": response["profile"]["picture"],
        }
        assert set(response["providerInfo"]["scope"].split()) >= set(SCOPE.split())
        assert response["providerInfo"]["idToken"].count(".") == 2
        identity = response["backstageIdentity"]
        assert identity["identity"]["userEntityRef"] == "user:default/alice"
        claims = _verify_backstage_token(server, identity["token"])
        assert claims["sub"] == "user:default/alice"
        assert claims["iss"] == f"{server.base_url}/api/auth"
        first_token = browser.cookies.get("oidc-refresh-token")
        assert first_token
        # The nonce is single use: the callback cleared it.
        assert browser.cookies.get("oidc-nonce", path="/api/auth/oidc/handler") is None

        refreshed = _refresh(browser, server)
        assert refreshed.status_code == 200, refreshed.text
        body = refreshed.json()
        assert body["profile"]["email"] == "alice@example.com"
        assert _verify_backstage_token(server, body["backstageIdentity"]["token"])["sub"] == (
            "user:default/alice"
        )
        # The provider rotated the refresh token; the cookie follows it.
        second_token = browser.cookies.get("oidc-refresh-token")
        assert second_token and second_token != first_token
        last = _refresh(browser, server)
        assert last.status_code == 200
        assert op.counts()["token"] == {"authorization_code": 1, "refresh_token": 2}

        logout = browser.post(
            f"{server.base_url}/api/auth/oidc/logout",
            params={"env": "development"},
            headers={**XRW, "Origin": APP_ORIGIN},
        )
        assert logout.status_code == 200
        assert op.counts()["revocation"] == 1
        assert browser.cookies.get("oidc-refresh-token") is None
        # RP-initiated logout: the frontend navigates to logoutUrl, ending the IdP session.
        logout_url = httpx2.URL(logout.json()["logoutUrl"])
        assert str(logout_url.copy_with(query=None)) == op.metadata()["end_session_endpoint"]
        # The newest ID token (from the last refresh; the sign-in's if in the same second).
        assert logout_url.params["id_token_hint"] == last.json()["providerInfo"]["idToken"]
        assert logout_url.params["post_logout_redirect_uri"] == SIGNED_OUT
        ended = end_session_through_confirmation(browser, str(logout_url))
        assert ended.headers["location"].startswith(SIGNED_OUT)
        # The IdP session is gone: a silent sign-in now needs a login.
        silent = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "env": "silent"},
        )
        back = browser.get(silent.headers["location"])
        while back.is_redirect and back.headers["location"].startswith(op.issuer):
            back = browser.get(back.headers["location"])
        assert "error=login_required" in back.headers["location"]

        after = _refresh(browser, server)
        assert after.status_code == 401
        assert after.json()["error"]["cause"] == {
            "name": "InputError",
            "message": "Missing session cookie",
        }


def test_sign_out_stays_in_the_app_and_ends_the_session_here(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    with _browser() as browser:
        start = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "flow": "popup", "env": "apponly"},
        )
        nonce = browser.cookies.get("oidc-nonce", path="/api/auth/oidc/handler")
        back = login_through_interactions(browser, start.headers["location"], login="dave")
        callback = back.headers["location"]
        assert "response" in popup_message(browser.get(callback).text)
        copy = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar if c.value)
        op.reset_counts()

        # A replayed callback, nonce cookie and all, never reaches the provider.
        replayed = httpx2.get(callback, headers={"Cookie": f"oidc-nonce={nonce}"})
        assert popup_message(replayed.text)["error"] == {
            "name": "NotAllowedError",
            "message": "Invalid nonce, the state was used already",
        }

        logout = browser.post(
            f"{server.base_url}/api/auth/oidc/logout",
            params={"env": "apponly"},
            headers={**XRW, "Origin": APP_ORIGIN},
        )
        # Backstage's answer: an empty 200 (no logoutUrl), the token revoked.
        assert (logout.status_code, logout.content) == (200, b"")
        assert op.counts()["revocation"] == 1
        # A copy of the cookies taken before sign-out: refused here, the OP never asked.
        after = httpx2.get(
            f"{server.base_url}/api/auth/oidc/refresh",
            params={"optional": "", "scope": SCOPE, "env": "apponly"},
            headers={**XRW, "Cookie": copy},
        )
        assert after.status_code == 401
        assert after.json()["error"]["cause"] == {
            "name": "AuthenticationError",
            "message": "Session ended",
        }
        assert op.counts()["token"] == {}
        # The user's session at the OP lives on: a silent sign-in is not asked to log in
        # (only to consent to offline_access again, which this OP asks for every client).
        silent = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "env": "silent"},
        )
        back = browser.get(silent.headers["location"])
        while back.is_redirect and back.headers["location"].startswith(op.issuer):
            back = browser.get(back.headers["location"])
        assert back.headers["location"].startswith(f"{server.base_url}/api/auth/oidc/handler")
        assert "error=consent_required" in back.headers["location"]


def test_reused_rotated_refresh_token_is_refused_after_the_grace_window(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    with _browser() as browser:
        assert _sign_in(browser, stack, login="bob").status_code == 200
        old = browser.cookies.get("oidc-refresh-token")
        granted = browser.cookies.get("oidc-granted-scope")
        op.reset_counts()
        assert _refresh(browser, server).status_code == 200

        def replay() -> httpx2.Response:
            # Another tab: the same request, with the cookies it still had.
            return httpx2.get(
                f"{server.base_url}/api/auth/oidc/refresh",
                params={"optional": "", "scope": SCOPE, "env": "development"},
                headers={
                    **XRW,
                    "Cookie": f"oidc-refresh-token={old}; oidc-granted-scope={granted}",
                },
            )

        # A request racing just behind the refresh gets the rotated session...
        within = replay()
        assert within.status_code == 200, within.text
        assert _idp_refresh_token(within.cookies["oidc-refresh-token"]) == _idp_refresh_token(
            browser.cookies["oidc-refresh-token"]
        )
        assert op.counts()["token"] == {"refresh_token": 1}
        # ...but after the grace window (3 s here) the old token goes to the IdP, which
        # refuses the reuse.
        time.sleep(3.5)
        late = replay()
        assert late.status_code == 401
        error = late.json()["error"]
        assert error["name"] == "AuthenticationError"
        assert error["message"].startswith("Refresh failed; caused by AuthenticationError: ")
        assert "invalid_grant" in error["message"]


def test_sign_in_resolves_users_from_catalog_files(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    _, server = stack
    with _browser() as browser:
        page = _sign_in(browser, stack, login="grace", env="catalog")
        identity = popup_message(page.text)["response"]["backstageIdentity"]["identity"]
        assert identity["userEntityRef"] == "user:default/grace"
        assert identity["ownershipEntityRefs"] == [
            "user:default/grace",
            "group:default/team-a",
            "group:guilds/guild",
        ]
    with _browser() as browser:
        page = _sign_in(browser, stack, login="mallory", env="catalog")
        error = popup_message(page.text)["error"]
        assert error["message"].startswith("Failed to sign-in, unable to resolve user identity.")
        assert browser.cookies.get("oidc-refresh-token") is None


def test_redirect_flow(stack: tuple[OpenIDProvider, AuthServer]) -> None:
    _, server = stack
    target = f"{APP_ORIGIN}/catalog?kind=component"
    with _browser() as browser:
        done = _sign_in(browser, stack, login="carol", flow="redirect", redirectUrl=target)
        assert done.status_code == 302
        assert done.headers["location"] == target
        assert browser.cookies.get("oidc-refresh-token")
        refreshed = _refresh(browser, server)
        assert refreshed.status_code == 200
        assert refreshed.json()["backstageIdentity"]["identity"]["userEntityRef"] == (
            "user:default/carol"
        )


def test_prompt_none_without_a_provider_session_is_reported(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    with _browser() as browser:
        start = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "env": "silent"},
        )
        assert "prompt=none" in start.headers["location"]
        back = login_through_interactions(browser, start.headers["location"], login="dave")
        page = browser.get(back.headers["location"])
        error = popup_message(page.text)["error"]
        assert error["name"] == "Error"
        assert error["message"].startswith("Authentication rejected, login_required")


def test_tampered_code_is_an_error_page(stack: tuple[OpenIDProvider, AuthServer]) -> None:
    op, server = stack
    with _browser() as browser:
        start = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "env": "development"},
        )
        back = login_through_interactions(browser, start.headers["location"], login="erin")
        url = httpx2.URL(back.headers["location"])
        page = browser.get(url.copy_set_param("code", "forged-code"))
        assert page.status_code == 200
        error = popup_message(page.text)["error"]
        assert error["message"].startswith(
            "Authentication failed, Failed to obtain access token, invalid_grant"
        )
        assert browser.cookies.get("oidc-refresh-token") is None


# -- an identity provider that is down, slow or broken ---------------------------------


class _SilentServer:
    """Accepts connections and never answers: a hung identity provider."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture(scope="module")
def broken_idps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    silent = _SilentServer()
    garbage_dir: Path = tmp_path_factory.mktemp("garbage")
    (garbage_dir / "index.html").write_text("<html>not discovery</html>")

    def env(url: str, **extra: Any) -> dict[str, Any]:
        return {"metadataUrl": url, "clientId": "c", "clientSecret": "s", **extra}

    port = free_port()
    config = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "auth": {
            "session": {"secret": SECRET},
            "providers": {
                "oidc": {
                    "down": env(f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"),
                    "slow": env(
                        f"http://127.0.0.1:{silent.port}/.well-known/openid-configuration",
                        timeout={"seconds": 1},
                    ),
                    "garbage": env(f"http://127.0.0.1:{port}/api/auth/oidc/ui/"),
                }
            },
        },
    }
    server = AuthServer(config, tmp_path_factory.mktemp("broken"), port=port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        silent.close()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ("down", "ConnectError"),
        ("slow", "timed out"),
        ("garbage", "not JSON"),
    ],
)
def test_identity_provider_failures_are_clean_errors(
    broken_idps: AuthServer, env: str, reason: str
) -> None:
    response = httpx2.get(
        f"{broken_idps.base_url}/api/auth/oidc/start",
        params={"env": env, "scope": "openid"},
        timeout=10.0,
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["name"] == "ServiceUnavailableError"
    assert error["message"].startswith("Failed to discover OpenID provider metadata")
    assert reason in error["message"]
    # The server stays healthy.
    assert httpx2.get(f"{broken_idps.base_url}/.backstage/health/v1/readiness").status_code == 200


def test_parallel_refreshes_share_one_upstream_refresh(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    """20 tabs refresh one session at once against an IdP that rotates refresh tokens and
    revokes the grant on reuse: nobody is logged out, and the IdP sees one refresh."""
    import asyncio

    op, server = stack
    with _browser() as browser:
        assert _sign_in(browser, stack, login="frank").status_code == 200
        cookie = browser.cookies.get("oidc-refresh-token")
    op.reset_counts()

    async def refresh_all() -> list[httpx2.Response]:
        async with httpx2.AsyncClient(timeout=15.0) as client:
            return await asyncio.gather(
                *[
                    client.get(
                        f"{server.base_url}/api/auth/oidc/refresh",
                        params={"env": "development", "scope": SCOPE},
                        headers={**XRW, "Cookie": f"oidc-refresh-token={cookie}"},
                    )
                    for _ in range(20)
                ]
            )

    responses = asyncio.run(refresh_all())
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert op.counts()["token"] == {"refresh_token": 1}
    rotated = {r.cookies.get("oidc-refresh-token") for r in responses}
    assert len(rotated - {None}) >= 1
    # Every tab can go on with the rotated session it was handed.
    follow_up = httpx2.get(
        f"{server.base_url}/api/auth/oidc/refresh",
        params={"env": "development"},
        headers={
            **XRW,
            "Cookie": f"oidc-refresh-token={responses[-1].cookies['oidc-refresh-token']}",
        },
    )
    assert follow_up.status_code == 200, follow_up.text
