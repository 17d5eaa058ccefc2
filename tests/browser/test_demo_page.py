"""The demo page (``GET /``) in headless Chromium, with the default config (``make run``):
sign in with ``oidc`` through the popup and the embedded development identity provider,
see the user and the decoded Backstage token, refresh, log out; and ``guest``.

The page is served by this server itself (``app.baseUrl`` is the backend's origin), so
this needs no static app and no OpenID provider process: only the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.support.cli_server import CliServer, default_config
from tests.support.oidc_provider import free_port

from .harness import Session, screenshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    port = free_port()
    server = CliServer(
        default_config(port), tmp_path_factory.mktemp("demo"), port=port, development=True
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _open(session: Session, server: CliServer) -> Page:
    page = session.context.new_page()
    page.goto(f"{server.base_url}/")
    session.wait_for_state(page, "signed-out")
    return page


def _payload(page: Page) -> dict[str, object]:
    payload: dict[str, object] = json.loads(page.text_content("#token-payload") or "{}")
    return payload


def test_sign_in_with_the_dev_idp_refresh_and_log_out(
    session: Session, demo_server: CliServer
) -> None:
    page = _open(session, demo_server)
    assert page.is_visible("#sign-in-oidc-development")
    assert page.is_hidden("#origin-warning")

    with page.expect_popup() as popup_info:
        page.locator("#sign-in-oidc-development").click()
    popup = popup_info.value
    popup.wait_for_url(f"{demo_server.base_url}/dev-idp/authorize?**")
    assert "Sign in to" in (popup.text_content("h1") or "")
    # The popup posts the result to the opener and closes itself.
    with popup.expect_event("close"):
        popup.locator("#user-alice").click()

    session.wait_for_state(page, "signed-in")
    assert page.text_content("#user") == "user:default/alice"
    assert page.text_content("#email") == "alice@example.com"
    assert page.text_content("#display-name") == "Alice Adams"
    assert page.text_content("#provider") == "oidc (development)"
    header = json.loads(page.text_content("#token-header") or "{}")
    assert header["alg"] == "ES256" and header["typ"] == "vnd.backstage.user"
    payload = _payload(page)
    assert payload["sub"] == "user:default/alice"
    assert payload["iss"] == f"{demo_server.base_url}/api/auth"
    provider_info = page.text_content("#provider-info") or ""
    assert '"idToken": "eyJ' in provider_info and "characters)" in provider_info
    assert not session.log.errors, session.log
    screenshot(page, "demo-signed-in.png")

    # Refresh: a new Backstage token, same user.
    with page.expect_response(lambda r: "/api/auth/oidc/refresh" in r.url) as refreshed:
        page.locator("#refresh").click()
    assert refreshed.value.status == 200
    assert refreshed.value.request.headers["x-requested-with"] == "XMLHttpRequest"
    session.wait_for_text(page, "#last-action", "(refreshed)")
    assert page.text_content("#state") == "signed-in"
    assert _payload(page)["sub"] == "user:default/alice"

    # Reloading restores the session through /refresh (the cookie), as Backstage does.
    page.reload()
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#last-action") == "(restored)"

    with page.expect_response(lambda r: "/api/auth/oidc/logout" in r.url) as logged_out:
        page.locator("#logout").click()
    assert logged_out.value.status == 200
    session.wait_for_state(page, "signed-out")
    assert page.is_hidden("#session")
    # The session is gone: /refresh answers 401 now.
    status = page.evaluate(
        """() => fetch('/api/auth/oidc/refresh?env=development', {
              headers: {'x-requested-with': 'XMLHttpRequest'}, credentials: 'include'
            }).then((r) => r.status)"""
    )
    assert status == 401
    assert not session.log.errors, session.log


def test_guest_signs_in_without_a_popup(session: Session, demo_server: CliServer) -> None:
    page = _open(session, demo_server)
    page.locator("#sign-in-guest").click()
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#user") == "user:development/guest"
    assert _payload(page)["sub"] == "user:development/guest"
    assert len(session.log.pages) == 1  # no popup
    page.locator("#logout").click()
    session.wait_for_state(page, "signed-out")
