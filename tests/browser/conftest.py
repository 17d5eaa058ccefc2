"""End-to-end fixtures: a real OpenID provider, this server, a static app on another origin,
and headless Chromium driven by Playwright.

Three origins on loopback, as in a real deployment:

* the app: ``http://localhost:<app port>``, static pages (``static/``) served by
  ``http.server`` in a thread;
* this server: ``http://localhost:<port>`` (``backend.cors`` allows the app, with
  credentials), a process started by :class:`tests.support.server.AuthServer`;
* the OpenID provider: ``http://localhost:<op port>`` (``tests/op``, oidc-provider), whose
  login, consent and logout pages are real HTML forms the browser fills in.

Chromium is Debian's (``scripts/install-browser.sh``); Playwright never downloads one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.support.oidc_provider import OpenIDProvider, free_port, start_openid_provider
from tests.support.server import AuthServer

from .harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    STATIC,
    TIMEOUT_MS,
    BrowserLog,
    Session,
    Stack,
    StaticApp,
    bundle_backstage_client,
)

# Package scope, not session: while Playwright's sync API is running it marks an asyncio loop
# as running in the main thread, so later tests calling asyncio.run() would fail.

SECRET = "browser-test-secret-of-32-or-more-chars"
CLIENT_ID = "backstage"
CLIENT_SECRET = "backstage-secret"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    site = tmp_path_factory.mktemp("browser-app")
    for page in STATIC.iterdir():
        shutil.copy(page, site / page.name)
    app = StaticApp(site)
    port = free_port()
    backend = f"http://localhost:{port}"
    signed_out = app.url("/signed-out.html")
    (site / "config.js").write_text(
        "window.TEST_CONFIG = "
        f"{{authBaseUrl: '{backend}/api/auth', backendBaseUrl: '{backend}', provider: 'oidc'}};\n"
    )
    config: dict[str, Any] = {
        "app": {"baseUrl": app.origin},
        "backend": {
            "baseUrl": backend,
            # As in Backstage's own app-config.yaml.
            "cors": {
                "origin": app.origin,
                "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
                "credentials": True,
            },
        },
        "auth": {"session": {"secret": SECRET}},
    }
    op: OpenIDProvider | None = None
    server: AuthServer | None = None
    try:
        app.start()
        op = start_openid_provider(
            clients=[
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{backend}/api/auth/oidc/handler/frame"],
                    "post_logout_redirect_uris": [signed_out],
                }
            ]
        )
        config["auth"]["providers"] = {
            "oidc": {
                # A fresh browser has no session at the OP: it must show its login page.
                # Sign-out as Backstage's: the user stays in the app.
                "development": op.environment(),
                # Sign-out ends the OP's session too (RP-initiated logout, opt-in).
                "federated": op.environment(federatedLogout=True, postLogoutRedirectUri=signed_out),
                # Backstage's default prompt=none: the OP answers login_required.
                "silent": op.environment(prompt=None),
            }
        }
        server = AuthServer(config, tmp_path_factory.mktemp("browser-server"), port=port)
        server.start()
        yield Stack(op=op, server=server, app=app)
    finally:
        if server is not None:
            server.stop()
        if op is not None:
            op.stop()
        app.stop()


@pytest.fixture(scope="package")
def backstage_client_page(stack: Stack) -> str:
    """The page built from the real ``@backstage/core-app-api`` (bundled once per session)."""
    bundle_backstage_client(stack.app.root / "backstage-client.js")
    return stack.app.url("/backstage.html")


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh (or set CHROMIUM_PATH)",
            pytrace=False,
        )
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def session(browser: Browser) -> Iterator[Session]:
    """A fresh browser profile (no cookies anywhere) for one test."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(TIMEOUT_MS)
    log = BrowserLog()
    context.on("console", log.on_console)
    context.on("weberror", log.on_error)
    context.on("requestfailed", log.on_request_failed)
    context.on("response", log.on_response)
    context.on("page", log.on_page)
    try:
        yield Session(context=context, log=log)
    finally:
        context.close()
