"""The real MCP client (PyPI ``mcp``) against Backstage's real MCP actions backend
(``@backstage/plugin-mcp-actions-backend`` 0.2.4, beside our server on one shared
app-config.yaml, tests/backstage_backend): its 401 carries no ``WWW-Authenticate``, so the
client reads the protected-resource metadata at the well-known path, which names our
server (discovery's external URL of ``auth``); the client signs in there with its Client
ID Metadata Document, the user approves, the client lists the tools and calls
``auth.who-am-i``, which the actions backend invokes at our server with its plugin token
on the user's behalf, and which returns the user's entity from the real catalog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from tests.authz.doc_server import DocumentServer
from tests.backstage_backend.support import ALICE, TEAM, Split, split_set_up
from tests.mcp_e2e.support import Browser, Storage, client_document

CALLBACK = "http://127.0.0.1:33419/callback"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Split, DocumentServer, str]]:
    with client_document(tmp_path, CALLBACK) as (cert, docs, client_id):
        with split_set_up(
            tmp_path,
            our_env={"SSL_CERT_FILE": str(cert)},
            with_oidc=False,
            # Backstage's key: it also makes the MCP actions backend publish its
            # protected-resource metadata.
            clientIdMetadataDocuments={"enabled": True, "allowedClientIdPatterns": [client_id]},
        ) as split:
            yield split, docs, client_id


async def _who_am_i(url: str, provider: OAuthClientProvider) -> tuple[list[str], Any]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = [tool.name for tool in (await session.list_tools()).tools]
        result = await session.call_tool("auth.who-am-i", {})
        assert not result.is_error, result
        return tools, result.structured_content


def test_a_real_mcp_client_calls_who_am_i_through_the_mcp_actions_backend(
    world: tuple[Split, DocumentServer, str],
) -> None:
    split, docs, client_id = world
    mcp_url = f"{split.main.base_url}/api/mcp-actions/v1"
    storage, browser = Storage(), Browser(split.ours)
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CALLBACK],
            client_name="Test MCP client",
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
        client_metadata_url=client_id,
    )
    tools, output = asyncio.run(_who_am_i(mcp_url, provider))
    assert tools == ["auth.who-am-i"]
    assert output["userInfo"] == {"userEntityRef": ALICE, "ownershipEntityRefs": [ALICE, TEAM]}
    assert output["entity"]["metadata"]["name"] == "alice"
    assert output["entity"]["metadata"]["uid"]  # the catalog's own entity
    assert browser.approvals == 1
    assert [p for p, _ in docs.requests] == ["/mcp-client.json"]
    # The client found our server through the actions backend's metadata.
    assert split.main.requests_to("/.well-known/oauth-protected-resource/api/mcp-actions/v1")
    tokens = storage.tokens
    # scopes_supported named offline_access (refresh tokens are on): a refresh token.
    assert tokens is not None and tokens.refresh_token

    # The access token expires: the client refreshes (the presence check asks the real
    # catalog) and the new token works at the actions backend, without asking the user.
    provider.context.token_expiry_time = time.time() - 1
    _, again = asyncio.run(_who_am_i(mcp_url, provider))
    assert again["userInfo"]["userEntityRef"] == ALICE
    assert browser.approvals == 1
    refreshed = storage.tokens
    assert refreshed is not None and refreshed.access_token != tokens.access_token
