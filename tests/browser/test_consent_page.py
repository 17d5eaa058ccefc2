"""The demo's consent page (``/oauth2/authorize/<id>``) in headless Chromium, with the
default config (``make run``): a command-line client (Authlib's OAuth 2 client, PKCE)
starts ``/api/auth/v1/authorize``, the user signs in on the page through the development
identity provider and approves or denies, and the client's loopback redirect receives the
answer; the client then exchanges the code."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.httpx_client import OAuth2Client
from playwright.sync_api import Page

from tests.support.cli_server import CliServer, default_config
from tests.support.oidc_provider import free_port

from .harness import Session, screenshot

pytestmark = pytest.mark.integration

VERIFIER = "consent-page-verifier-" + "v" * 43


class _Loopback(BaseHTTPRequestHandler):
    """The CLI's redirect listener on an ephemeral loopback port (RFC 8252)."""

    received: list[str]

    def do_GET(self) -> None:  # noqa: N802 - stdlib signature
        if not self.path.startswith("/callback"):  # the browser's /favicon.ico
            self.send_error(404)
            return
        port = self.server.server_address[1]  # type: ignore[index]  # an AF_INET server
        self.received.append(f"http://127.0.0.1:{port}{self.path}")
        body = b"<!doctype html><title>CLI</title><p id=done>You may close this window.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def loopback() -> Iterator[tuple[int, list[str]]]:
    received: list[str] = []
    handler = type("Handler", (_Loopback,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliServer]:
    port = free_port()
    server = CliServer(
        default_config(port), tmp_path_factory.mktemp("consent"), port=port, development=True
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _cli(port: int) -> OAuth2Client:
    return OAuth2Client(
        client_id="demo-cli",
        redirect_uri=f"http://127.0.0.1:{port}/callback",
        scope="openid offline_access",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )


def _open_consent(
    session: Session, server: CliServer, cli: OAuth2Client, page: Page | None = None
) -> tuple[Page, str]:
    url, state = cli.create_authorization_url(
        f"{server.base_url}/api/auth/v1/authorize", code_verifier=VERIFIER
    )
    page = page or session.context.new_page()
    page.goto(url)
    page.wait_for_url(f"{server.base_url}/oauth2/authorize/*")
    session.wait_for_text(page, "#client-name", "Demo CLI")
    return page, state


def _sign_in_as_alice(session: Session, page: Page, server: CliServer) -> None:
    session.wait_for_state(page, "signed-out")
    assert page.is_disabled("#approve")
    with page.expect_popup() as popup_info:
        page.locator("#sign-in-oidc-development").click()
    popup = popup_info.value
    popup.wait_for_url(f"{server.base_url}/dev-idp/authorize?**")
    with popup.expect_event("close"):
        popup.locator("#user-alice").click()
    session.wait_for_state(page, "signed-in")
    assert page.text_content("#user") == "user:default/alice"


def test_sign_in_approve_and_the_cli_gets_its_tokens(
    session: Session, demo_server: CliServer, loopback: tuple[int, list[str]]
) -> None:
    port, received = loopback
    with _cli(port) as cli:
        page, state = _open_consent(session, demo_server, cli)
        assert page.text_content("#client-id") == "demo-cli"
        # The host of the redirect URI, port included: the user sees where the code goes.
        assert page.text_content("#redirect-host") == f"127.0.0.1:{port}"
        assert page.locator("#scopes li").all_text_contents() == ["openid", "offline_access"]
        _sign_in_as_alice(session, page, demo_server)
        screenshot(page, "consent-signed-in.png")

        with page.expect_response(lambda r: r.url.endswith("/approve")) as approved:
            page.locator("#approve").click()
        assert approved.value.status == 200
        assert approved.value.request.headers["authorization"].startswith("Bearer ")
        page.wait_for_url(f"http://127.0.0.1:{port}/callback?**")
        assert len(received) == 1
        query = parse_qs(urlsplit(received[0]).query)
        assert query["state"] == [state] and "code" in query

        token = cli.fetch_token(
            f"{demo_server.base_url}/api/auth/v1/token",
            authorization_response=received[0],
            code_verifier=VERIFIER,
        )
    payload = token["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["sub"] == "user:default/alice"
    assert token["scope"] == "openid offline_access"
    assert not session.log.errors, session.log


def test_deny_sends_access_denied_and_a_signed_in_user_is_not_asked_again(
    session: Session, demo_server: CliServer, loopback: tuple[int, list[str]]
) -> None:
    port, received = loopback
    with _cli(port) as cli:
        page, state = _open_consent(session, demo_server, cli)
        _sign_in_as_alice(session, page, demo_server)
        # A second request in the same tab: the session is restored, no popup.
        page, state = _open_consent(session, demo_server, cli, page)
        session.wait_for_state(page, "signed-in")
        page.locator("#deny").click()
        page.wait_for_url(f"http://127.0.0.1:{port}/callback?**")
    query = parse_qs(urlsplit(received[-1]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]
    assert "code" not in query
    assert len(session.log.pages) == 2  # the tab and the one sign-in popup
    assert not session.log.errors, session.log


class _MetadataDocument(BaseHTTPRequestHandler):
    """Serves a Client ID Metadata Document at /client.json (an MCP client's)."""

    document: dict[str, Any]

    def do_GET(self) -> None:  # noqa: N802 - stdlib signature
        if self.path != "/client.json":
            self.send_error(404)
            return
        body = json.dumps(self.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def cimd_server(
    tmp_path_factory: pytest.TempPathFactory, loopback: tuple[int, list[str]]
) -> Iterator[tuple[CliServer, str]]:
    callback_port, _ = loopback
    documents = ThreadingHTTPServer(("127.0.0.1", 0), _MetadataDocument)
    client_id = f"http://localhost:{documents.server_address[1]}/client.json"
    _MetadataDocument.document = {
        "client_id": client_id,
        "client_name": "An MCP client",
        "redirect_uris": [f"http://127.0.0.1:{callback_port}/callback"],
        "token_endpoint_auth_method": "none",
    }
    threading.Thread(target=documents.serve_forever, daemon=True).start()
    port = free_port()
    config = default_config(port)
    config["auth"]["clientIdMetadataDocuments"] = {
        "enabled": True,
        "allowedClientIdPatterns": [client_id],
    }
    server = CliServer(config, tmp_path_factory.mktemp("consent-cimd"), port=port, development=True)
    try:
        server.start()
        yield server, client_id
    finally:
        server.stop()
        documents.shutdown()
        documents.server_close()


def test_a_client_with_a_metadata_document_shows_who_describes_it(
    session: Session, cimd_server: tuple[CliServer, str], loopback: tuple[int, list[str]]
) -> None:
    server, client_id = cimd_server
    port, _ = loopback
    with OAuth2Client(
        client_id=client_id,
        redirect_uri=f"http://127.0.0.1:{port}/callback",
        scope="openid",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    ) as cli:
        url, _ = cli.create_authorization_url(
            f"{server.base_url}/api/auth/v1/authorize", code_verifier=VERIFIER
        )
    page = session.context.new_page()
    page.goto(url)
    page.wait_for_url(f"{server.base_url}/oauth2/authorize/*")
    session.wait_for_text(page, "#client-name", "An MCP client")
    # The user sees which host publishes the document that names the client.
    host = urlsplit(client_id).hostname or ""
    session.wait_for_text(page, "#metadata-host", host)
    assert page.is_visible("#metadata-host")
