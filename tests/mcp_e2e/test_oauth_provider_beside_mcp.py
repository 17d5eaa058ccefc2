"""An OAuth provider starts and signs in where PyPI ``mcp`` is installed too.

``mcp`` brings httpx2, and Authlib builds its client on httpx2 whenever it is
importable: a server handing Authlib objects of another httpx fails at its first
provider there (README, "httpx2"). The test extra installs ``mcp`` beside the server;
the server runs as a real process of that environment against a real OpenID provider
(oidc-provider), through sign-in and refresh.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    popup_sign_in,
    start_openid_provider,
)
from tests.support.popup import popup_message
from tests.support.server import AuthServer

APP_ORIGIN = "http://localhost:3000"
SCOPE = "openid email profile offline_access"


def test_authlib_here_is_built_on_httpx2() -> None:
    """The premise: here Authlib's client is an httpx2 client (were it not, the test
    below would prove nothing about the conflict)."""
    probe = (
        "import httpx2, mcp\n"
        "from authlib.integrations.httpx_client import AsyncOAuth2Client\n"
        "assert issubclass(AsyncOAuth2Client, httpx2.AsyncClient)\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", probe], check=True)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[OpenIDProvider, AuthServer]]:
    port = free_port()
    op = start_openid_provider(
        clients=[backstage_client(frame_callback(f"http://localhost:{port}"))]
    )
    config = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "auth": {
            "session": {"secret": "mcp-venv-test-secret-of-32-or-more"},
            "providers": {"oidc": {"development": op.environment()}},
        },
    }
    server = AuthServer(config, tmp_path, port=port)
    try:
        server.start()
        yield op, server
    finally:
        server.stop()
        op.stop()


def test_the_oidc_provider_signs_in_and_refreshes(
    stack: tuple[OpenIDProvider, AuthServer],
) -> None:
    op, server = stack
    with httpx2.Client(follow_redirects=False, timeout=15.0) as browser:
        page = popup_sign_in(
            browser, f"{server.base_url}/api/auth", login="alice", scope=SCOPE, origin=APP_ORIGIN
        )
        message = popup_message(page.text)
        assert message["type"] == "authorization_response", message
        identity = message["response"]["backstageIdentity"]["identity"]
        assert identity["userEntityRef"] == "user:default/alice"

        refreshed = browser.get(
            f"{server.base_url}/api/auth/oidc/refresh",
            params={"optional": "", "scope": SCOPE, "env": "development"},
            headers={"X-Requested-With": "XMLHttpRequest"},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["profile"]["email"] == "alice@example.com"
        assert op.counts()["token"] == {"authorization_code": 1, "refresh_token": 1}
