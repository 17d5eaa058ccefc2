"""A real MCP client end to end (PyPI ``mcp``): its OAuth client, identified by a Client
ID Metadata Document on loopback HTTPS (allowed by an exact pattern), signs in through
this server (running as a process) to a small MCP server that accepts Backstage tokens
(verified with this server's JWKS; RFC 9728 metadata names this server). The user
approves through the consent endpoints as the app does; the tool runs as the user;
refresh works; revocation ends the grant."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientMetadata

from tests.authz.doc_server import DocumentServer
from tests.mcp_e2e.support import Browser, Storage, client_document
from tests.support.oidc_provider import free_port
from tests.support.server import AuthServer

CALLBACK = "http://127.0.0.1:33418/callback"


class BackstageTokens:
    """The MCP server's token verifier: a Backstage user token, checked with the JWKS."""

    def __init__(self, auth_base: str) -> None:
        self.auth_base = auth_base

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx2.AsyncClient() as client:
            keys = (await client.get(f"{self.auth_base}/.well-known/jwks.json")).json()
        try:
            decoded = jwt.decode(token, KeySet.import_key_set(keys))
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.auth_base}).validate(
                decoded.claims
            )
        except (JoseError, ValueError):
            return None
        return AccessToken(
            token=token,
            client_id="backstage",
            scopes=["openid", "offline_access"],
            expires_at=int(decoded.claims["exp"]),
            subject=str(decoded.claims["sub"]),
        )


def _serve(app: Any, port: int) -> uvicorn.Server:
    # No log_config or log_level: either would reconfigure uvicorn's loggers for the whole
    # test process (a later test of the server's own logging would then see nothing).
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level=None)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the MCP server did not start"
        time.sleep(0.05)
    return server


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AuthServer, DocumentServer, str]]:
    with client_document(tmp_path, CALLBACK) as (cert, docs, client_id):
        port = free_port()
        config = {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": f"http://127.0.0.1:{port}"},
            "auth": {
                "session": {"secret": "mcp-end-to-end-session-secret"},
                "providers": {"guest": {}},
                "clientIdMetadataDocuments": {
                    "enabled": True,
                    "allowedClientIdPatterns": [client_id],
                },
                "experimentalRefreshToken": {
                    "enabled": True,
                    "dangerouslyDisableCatalogPresenceCheck": True,
                },
            },
        }
        auth = AuthServer(
            config, tmp_path, port=port, development=True, env={"SSL_CERT_FILE": str(cert)}
        )
        auth.base_url = f"http://127.0.0.1:{port}"
        with auth:
            yield auth, docs, client_id


def _mcp_server(auth_base: str, port: int) -> MCPServer:
    server = MCPServer(
        "backstage-test",
        token_verifier=BackstageTokens(auth_base),
        auth=AuthSettings(
            issuer_url=auth_base,
            resource_server_url=f"http://127.0.0.1:{port}/mcp",
            required_scopes=["openid", "offline_access"],
            validate_token_resource=False,
        ),
    )

    @server.tool()
    def whoami() -> str:
        token = get_access_token()
        return token.subject if token and token.subject else "nobody"

    return server


async def _call_whoami(url: str, provider: OAuthClientProvider) -> str:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
        return str(result.content[0].text)  # type: ignore[union-attr]


def test_a_real_mcp_client_signs_in_refreshes_and_is_revoked(
    world: tuple[AuthServer, DocumentServer, str],
) -> None:
    auth, docs, client_id = world
    auth_base = f"{auth.base_url}/api/auth"
    mcp_port = free_port()
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    server = _serve(_mcp_server(auth_base, mcp_port).streamable_http_app(), mcp_port)
    try:
        storage, browser = Storage(), Browser(auth)

        def provider() -> OAuthClientProvider:
            return OAuthClientProvider(
                server_url=mcp_url,
                client_metadata=OAuthClientMetadata(
                    redirect_uris=[CALLBACK],
                    client_name="Test MCP client",
                    token_endpoint_auth_method="none",
                    grant_types=["authorization_code", "refresh_token"],
                    scope="openid offline_access",
                ),
                storage=storage,
                redirect_handler=browser.redirect,
                callback_handler=browser.callback,
                client_metadata_url=client_id,
            )

        client = provider()
        assert asyncio.run(_call_whoami(mcp_url, client)) == "user:development/guest"
        assert browser.approvals == 1
        assert [p for p, _ in docs.requests] == ["/mcp-client.json"]
        tokens = storage.tokens
        assert tokens is not None and tokens.refresh_token

        # The access token expires: the client refreshes instead of asking the user again.
        client.context.token_expiry_time = time.time() - 1
        assert asyncio.run(_call_whoami(mcp_url, client)) == "user:development/guest"
        assert browser.approvals == 1
        refreshed = storage.tokens
        assert refreshed is not None and refreshed.refresh_token != tokens.refresh_token

        revoked = httpx2.post(
            f"{auth_base}/v1/revoke",
            data={"token": refreshed.refresh_token, "client_id": client_id},
        )
        assert revoked.status_code == 200
        again = httpx2.post(
            f"{auth_base}/v1/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refreshed.refresh_token,
                "client_id": client_id,
            },
        )
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
    finally:
        server.should_exit = True
