"""Sign-in, session restore and sign-out in headless Chromium, the way the stock Backstage
frontend does them (``static/app.html`` speaks @backstage/core-app-api's protocol in plain
JS: the popup + postMessage, the credentialed cross-origin /refresh and /logout).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page

from .harness import (
    SCOPE,
    Session,
    Stack,
    confirm_logout_at_op,
    log_in_at_op,
    screenshot,
)

pytestmark = pytest.mark.integration


def _events(page: Page, kind: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = page.evaluate("window.testEvents")
    return [e for e in events if e["type"] == kind]


def _open_app(session: Session, stack: Stack, query: str = "") -> Page:
    page = session.context.new_page()
    page.goto(stack.app.url(f"/app.html{query}"))
    return page


def _sign_in(session: Session, stack: Stack, page: Page, login: str) -> Page:
    """Click "Sign in", log in at the OP in the popup; returns the (closed) popup."""
    session.wait_for_state(page, "signed-out")
    with page.expect_popup() as popup_info:
        page.locator("#sign-in").click()
    popup = popup_info.value
    log_in_at_op(popup, stack.op, login)
    return popup


def _preflights(stack: Stack, path: str) -> int:
    """OPTIONS requests to ``path`` that the server answered 204 (its access log)."""
    return len(
        re.findall(rf'"OPTIONS {re.escape(path)}[?][^"]* HTTP/1.1\\" 204', stack.server.output)
    )


def _cors_headers(stack: Stack, headers: dict[str, str]) -> None:
    assert headers.get("access-control-allow-origin") == stack.app.origin, headers
    assert headers.get("access-control-allow-credentials") == "true", headers


def test_first_refresh_is_a_401_the_page_can_read(session: Session, stack: Stack) -> None:
    """(d) Before any sign-in the optional /refresh answers 401 with CORS headers, so the
    page sees the 401 (a CORS failure would be an opaque network error)."""
    preflights = _preflights(stack, "/api/auth/oidc/refresh")
    page = _open_app(session, stack)
    session.wait_for_state(page, "signed-out")
    assert page.text_content("#refresh-status") == "401"
    assert not session.log.failed, session.log
    (refresh,) = session.log.responses_to("/api/auth/oidc/refresh")
    assert refresh.status == 401
    assert refresh.request.all_headers()["x-requested-with"] == "XMLHttpRequest"
    assert refresh.request.all_headers()["origin"] == stack.app.origin
    _cors_headers(stack, refresh.all_headers())
    # The custom header made it a preflighted request (a fresh profile has no preflight
    # cache): the server answered the OPTIONS with 204.
    assert _preflights(stack, "/api/auth/oidc/refresh") == preflights + 1


def test_popup_sign_in_shows_the_user(session: Session, stack: Stack) -> None:
    """(a) + (e) Sign in through the popup: the OP's real login and consent forms, then our
    callback page posts the result to the opener and closes itself."""
    page = _open_app(session, stack)
    popup = _sign_in(session, stack, page, "alice")
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#email") == "alice@example.com"
    assert page.text_content("#user") == "user:default/alice"
    assert page.text_content("#source") == "popup"
    assert set((page.text_content("#scope") or "").split()) >= set(SCOPE.split())
    screenshot(page, "signed-in.png")

    # (e) The popup closed itself (nothing here closes it) after posting to its opener,
    # which a Cross-Origin-Opener-Policy would have cut off.
    assert popup.is_closed()
    (frame,) = session.log.responses_to("/api/auth/oidc/handler/frame")
    assert frame.status == 200
    assert frame.frame.page == popup
    # (The popup is gone: these are the headers Chromium reported, Set-Cookie left out.)
    headers = frame.headers
    assert headers["content-security-policy"].startswith("script-src 'sha256-"), headers
    # No document the popup showed (our /start redirect, the OP's pages, our callback page)
    # asked for a browsing context group of its own, which would have set opener to null.
    navigations = [
        r
        for r in session.log.responses
        if r.frame.page == popup and r.request.is_navigation_request()
    ]
    assert [r.url.split("?")[0] for r in navigations][-1] == frame.url.split("?")[0]
    for response in navigations:
        coop = response.headers.get("cross-origin-opener-policy", "unsafe-none")
        assert coop == "unsafe-none", (response.url, coop)
    # The opener saw both messages from the popup, from the auth backend's origin.
    assert _events(page, "config_info") == [
        {"type": "config_info", "targetOrigin": stack.app.origin}
    ]
    assert _events(page, "authorization_response") == [
        {"type": "authorization_response", "error": False}
    ]
    assert not session.log.errors, session.log


def test_reload_restores_the_session_without_a_popup(session: Session, stack: Stack) -> None:
    """(b) After a reload the page gets the session from /refresh: cross-origin and
    credentialed (the refresh-token cookie goes along); no popup."""
    page = _open_app(session, stack)
    _sign_in(session, stack, page, "bob")
    session.wait_for_state(page, "signed-in")
    pages_before = len(session.log.pages)
    starts_before = len(session.log.responses_to("/api/auth/oidc/start"))

    page.reload()
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#source") == "refresh"
    assert page.text_content("#refresh-status") == "200"
    assert page.text_content("#email") == "bob@example.com"
    assert page.text_content("#user") == "user:default/bob"
    assert len(session.log.pages) == pages_before, "a popup was opened"
    assert len(session.log.responses_to("/api/auth/oidc/start")) == starts_before
    refresh = session.log.responses_to("/api/auth/oidc/refresh")[-1]
    assert refresh.status == 200
    assert "oidc-refresh-token=" in refresh.request.all_headers().get("cookie", "")
    _cors_headers(stack, refresh.all_headers())


def test_sign_out_ends_the_session(session: Session, stack: Stack) -> None:
    """(c) Sign out: POST /logout (credentialed), the OP's logout page through the returned
    logoutUrl (``federatedLogout: true``), then the app's /refresh fails with 401 and the
    app shows signed-out."""
    page = _open_app(session, stack, "?env=federated")
    _sign_in(session, stack, page, "carol")
    session.wait_for_state(page, "signed-in")
    before = stack.op.counts()

    preflights = _preflights(stack, "/api/auth/oidc/logout")
    page.locator("#sign-out").click()
    confirm_logout_at_op(page, stack)
    assert _preflights(stack, "/api/auth/oidc/logout") == preflights + 1
    (logout,) = session.log.responses_to("/api/auth/oidc/logout")
    assert logout.status == 200
    assert logout.request.method == "POST"
    _cors_headers(stack, logout.all_headers())
    # The page followed the logoutUrl of the answer to the OP (RP-initiated logout).
    op_pages = [
        r.url
        for r in session.log.responses
        if r.frame.page == page
        and r.request.is_navigation_request()
        and r.url.startswith(f"{stack.op.issuer}/")
    ]
    assert op_pages, session.log
    assert "id_token_hint=" in op_pages[0], op_pages
    after = stack.op.counts()
    assert after["revocation"] == before["revocation"] + 1
    assert after["end_session"] > before["end_session"]

    page.goto(stack.app.url("/app.html"))
    session.wait_for_state(page, "signed-out")
    assert page.text_content("#refresh-status") == "401"
    assert page.text_content("#user") == ""
    _cors_headers(stack, session.log.responses_to("/api/auth/oidc/refresh")[-1].all_headers())


def test_a_sign_in_error_reaches_the_app(session: Session, stack: Stack) -> None:
    """An error from the OP (prompt=none without a session there: login_required) comes
    back on the popup page as an authorization_response error, which the app shows."""
    page = _open_app(session, stack, "?env=silent")
    session.wait_for_state(page, "signed-out")
    with page.expect_popup() as popup_info:
        page.locator("#sign-in").click()
    popup = popup_info.value
    if not popup.is_closed():
        popup.wait_for_event("close")
    page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert page.text_content("#state") == "signed-out"
    error = page.text_content("#error") or ""
    assert "login_required" in error or "Login required" in error, error
    assert _events(page, "authorization_response") == [
        {"type": "authorization_response", "error": True}
    ]
    assert _events(page, "config_info") == [
        {"type": "config_info", "targetOrigin": stack.app.origin}
    ]
