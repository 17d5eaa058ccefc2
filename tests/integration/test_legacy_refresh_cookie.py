"""A user signed in through Backstage whose next refresh lands on our server, against a real
OpenID provider: Backstage's refresh cookie is the provider's raw refresh token. With
auth.session.acceptLegacyRefreshCookiesUntil in the future it is accepted once and answered
with a sealed cookie; a second use of the raw value is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from app.oauth.sessions import SessionCodec
from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    login_through_interactions,
    start_openid_provider,
)
from tests.support.server import AuthServer

pytestmark = pytest.mark.integration

APP_ORIGIN = "http://localhost:3000"
SCOPE = "openid email profile offline_access"
XRW = {"X-Requested-With": "XMLHttpRequest"}
SECRET = "legacy-cookie-test-secret-of-32-characters"
COOKIE = "oidc-refresh-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenIDProvider, AuthServer]]:
    port = free_port()
    op = start_openid_provider(
        clients=[backstage_client(frame_callback(f"http://localhost:{port}"))]
    )
    config = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "auth": {
            "session": {
                "secret": SECRET,
                "acceptLegacyRefreshCookiesUntil": "2999-01-01T00:00:00Z",
            },
            "providers": {"oidc": {"development": op.environment()}},
        },
    }
    server = AuthServer(config, tmp_path_factory.mktemp("server"), port=port)
    try:
        server.start()
        yield op, server
    finally:
        server.stop()
        op.stop()


def _provider_refresh_token(stack: tuple[OpenIDProvider, AuthServer]) -> str:
    """A raw refresh token from the provider, as Backstage would hold it in its cookie."""
    op, server = stack
    with httpx2.Client(follow_redirects=False, timeout=15.0) as browser:
        start = browser.get(
            f"{server.base_url}/api/auth/oidc/start",
            params={"scope": SCOPE, "origin": APP_ORIGIN, "flow": "popup", "env": "development"},
        )
        back = login_through_interactions(browser, start.headers["location"], login="ada")
        assert browser.get(back.headers["location"]).status_code == 200
        sealed = browser.cookies.get(COOKIE)
    assert sealed
    return (
        SessionCodec([SECRET])
        .open(sealed, cookie_name=COOKIE, provider_id="oidc", env="development")
        .refresh_token
    )


def _refresh(server: AuthServer, cookie: str) -> httpx2.Response:
    return httpx2.get(
        f"{server.base_url}/api/auth/oidc/refresh",
        params={"optional": "", "scope": SCOPE, "env": "development"},
        headers={**XRW, "Cookie": f"{COOKIE}={cookie}"},
        timeout=15.0,
    )


def test_a_backstage_cookie_is_accepted_once_and_sealed(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    raw = _provider_refresh_token(stack)
    response = _refresh(server, raw)
    assert response.status_code == 200, response.text
    assert response.json()["profile"]["email"] == "ada@example.com"
    sealed = response.cookies.get(COOKIE)
    assert sealed and len(sealed.split(".")) == 5
    # The provider rotated the token: the sealed cookie holds the new one and works.
    assert _refresh(server, sealed).status_code == 200
    # A copy of the Backstage cookie is spent.
    again = _refresh(server, raw)
    assert again.status_code == 401
    assert "already used" in again.json()["error"]["message"]


def test_a_forged_raw_cookie_is_refused_by_the_provider(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    _, server = stack
    assert _refresh(server, "not-a-refresh-token-the-provider-issued").status_code == 401
