"""The demo's consent page (``/oauth2/authorize/<id>``): served only when ``app.baseUrl``
is this server and the authorization server is mounted (the browser test drives it)."""

from __future__ import annotations

import json
import re

from tests.fakes.app_factory import BACKEND_BASE_URL, make_client
from tests.fakes.clock import FakeClock

from .conftest import World, build, config, start


def test_not_served_under_a_real_backstage_app(world: World) -> None:
    # app.baseUrl is another origin: the app's own page is the consent page.
    session_id = start(world.client)
    response = world.client.get(f"/oauth2/authorize/{session_id}")
    assert response.status_code == 404
    assert response.json()["error"]["name"] == "NotFoundError"


def test_served_when_the_app_is_this_server() -> None:
    raw = config()
    raw["app"] = {"baseUrl": BACKEND_BASE_URL}
    with make_client(build(raw, FakeClock())) as client:
        response = client.get("/oauth2/authorize/a-session-id")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    island = re.search(
        r'<script id="consent-config" type="application/json">(.*?)</script>', response.text
    )
    assert island is not None
    assert json.loads(island.group(1)) == {
        "authBaseUrl": f"{BACKEND_BASE_URL}/api/auth",
        "environment": "development",
        "providers": [{"id": "guest", "kind": "proxy"}],
        "sessionId": "a-session-id",
    }


def test_not_served_without_an_authorization_server() -> None:
    raw = config()
    raw["app"] = {"baseUrl": BACKEND_BASE_URL}
    del raw["auth"]["staticClients"]
    raw["auth"]["experimentalRefreshToken"] = {"enabled": False}
    with make_client(build(raw, FakeClock())) as client:
        assert client.get("/oauth2/authorize/a-session-id").status_code == 404


def test_the_session_id_is_escaped_in_the_page() -> None:
    raw = config()
    raw["app"] = {"baseUrl": BACKEND_BASE_URL}
    with make_client(build(raw, FakeClock())) as client:
        response = client.get("/oauth2/authorize/%3Cscript%3Ealert(1)")
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "\\u003cscript\\u003ealert(1)" in response.text
