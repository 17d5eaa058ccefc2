"""The REAL Backstage frontend client against this server, in headless Chromium.

``static/backstage.html`` runs ``frontend/src/backstage-client.js``: the OAuth2 API of
``@backstage/core-app-api`` (the exact version in ``frontend/package-lock.json``), bundled
with esbuild by the ``backstage_client_page`` fixture, set up as Backstage's app-defaults
set up an OIDC provider, and driven as its SignInPage and OAuthRequestDialog drive it.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from .harness import Session, Stack, log_in_at_op, screenshot

pytestmark = pytest.mark.integration


def _open(session: Session, url: str) -> Page:
    page = session.context.new_page()
    page.goto(url)
    # SignInPage's optional check on load: /refresh answers 401, no popup.
    session.wait_for_state(page, "signed-out")
    return page


def _assert_signed_in(session: Session, page: Page, login: str, source: str) -> None:
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#source") == source
    assert page.text_content("#email") == f"{login}@example.com"
    assert page.text_content("#user") == f"user:default/{login}"
    assert page.text_content("#ownership") == f"user:default/{login}"
    assert page.text_content("#token") == "JWT"
    # getIdToken asks for the openid scope: the session's providerInfo.scope has it.
    assert page.text_content("#id-token") == "JWT"


def test_real_client_signs_in_restores_and_signs_out(
    session: Session, stack: Stack, backstage_client_page: str
) -> None:
    page = _open(session, backstage_client_page)
    assert len(session.log.responses_to("/api/auth/oidc/refresh")) == 1

    # getBackstageIdentity({instantPopup: true}): the client's own popup and postMessage code.
    with page.expect_popup() as popup_info:
        page.locator("#sign-in").click()
    popup = popup_info.value
    log_in_at_op(popup, stack.op, "dave")
    _assert_signed_in(session, page, "dave", "sign-in")
    (start,) = session.log.responses_to("/api/auth/oidc/start")
    assert start.url.endswith("&flow=popup&env=development")
    screenshot(page, "backstage-client-signed-in.png")

    # A reload loses the in-memory session: the client gets it back with /refresh alone.
    pages_before = len(session.log.pages)
    page.reload()
    _assert_signed_in(session, page, "dave", "load")
    assert len(session.log.pages) == pages_before, "a popup was opened"
    assert len(session.log.responses_to("/api/auth/oidc/start")) == 1
    refresh = session.log.responses_to("/api/auth/oidc/refresh")[-1]
    assert refresh.status == 200
    assert "optional&scope=" in refresh.url

    # signOut(): POST /logout answers an empty 200 (Backstage's sign-out: no logoutUrl),
    # and the user stays in the app, signed out.
    ended_before = stack.op.counts()["end_session"]
    page.locator("#sign-out").click()
    session.wait_for_state(page, "signed-out")
    assert page.text_content("#source") == "sign-out"
    (logout,) = session.log.responses_to("/api/auth/oidc/logout")
    assert logout.status == 200
    assert "content-type" not in logout.headers  # no body: no logoutUrl
    assert page.url == backstage_client_page
    # Never sent to the OP's end-session page.
    assert stack.op.counts()["end_session"] == ended_before
    # A reload (the SignInPage's optional check): /refresh is 401, the app shows signed-out.
    page.reload()
    session.wait_for_state(page, "signed-out")
    assert page.url == backstage_client_page
    assert session.log.responses_to("/api/auth/oidc/refresh")[-1].status == 401
    assert not session.log.errors, session.log


def test_real_client_login_request_dialog(
    session: Session, stack: Stack, backstage_client_page: str
) -> None:
    """A non-optional call without a session queues a login request on oauthRequestApi;
    the "Log in to OIDC" entry (what OAuthRequestDialog shows) opens the popup."""
    page = _open(session, backstage_client_page)
    page.locator("#sign-in-request").click()
    request = page.locator("#auth-requests button.auth-request")
    request.wait_for()
    assert request.text_content() == "Log in to OIDC"
    with page.expect_popup() as popup_info:
        request.click()
    log_in_at_op(popup_info.value, stack.op, "erin")
    _assert_signed_in(session, page, "erin", "sign-in-request")
    assert not session.log.errors, session.log
