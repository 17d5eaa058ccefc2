"""Client ID Metadata Documents through the app: discovery, the CLI's document, RFC 8414
metadata, the code flow of a document's client, the cache, revocation by client id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from connexion import AsyncApp

from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.authz.conftest import GUEST, World, approve, config, pkce, start
from tests.authz.doc_server import DocumentServer, document_server
from tests.fakes.app_factory import APP_BASE_URL, JarlessClient, make_client
from tests.fakes.clock import FakeClock

REDIRECT = "http://127.0.0.1:9999/callback"
BASE = "http://localhost:7007/api/auth"


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int) -> list[str]:
        if host in ("127.0.0.1", "localhost"):
            return ["127.0.0.1"]
        if host not in self.answers:
            raise OSError(f"unknown host {host}")
        return self.answers[host]


def build(raw: dict[str, Any], clock: FakeClock, resolver: FakeResolver | None = None) -> AsyncApp:
    return create_app(
        read_settings(raw),
        development=True,
        deps=Dependencies(
            clock=clock,
            providers=REGISTRY,
            catalog=InMemoryCatalog([CatalogUser(ref=GUEST)]),
            dns_resolver=resolver or FakeResolver({}),
        ),
        validate_responses=True,
    )


@dataclass
class Cimd:
    clock: FakeClock
    client: JarlessClient
    docs: DocumentServer
    client_id: str


def cimd_config(patterns: list[str], **auth: Any) -> dict[str, Any]:
    return config(
        staticClients=[],
        clientIdMetadataDocuments={"enabled": True, "allowedClientIdPatterns": patterns},
        **auth,
    )


@pytest.fixture
def cimd() -> Iterator[Cimd]:
    clock = FakeClock()
    with document_server() as docs:
        client_id = docs.client_document(redirect_uris=["http://127.0.0.1/callback"])
        with make_client(build(cimd_config([client_id]), clock)) as client:
            yield Cimd(clock, client, docs, client_id)


def authorize(
    client: JarlessClient, client_id: str, redirect_uri: str = REDIRECT, challenge: str = ""
) -> Any:
    return client.get(
        "/api/auth/v1/authorize",
        params={
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid offline_access",
            "state": "st",
            "code_challenge": challenge or pkce()[1],
            "code_challenge_method": "S256",
        },
    )


def test_discovery_and_rfc8414_metadata(cimd: Cimd) -> None:
    doc = cimd.client.get("/api/auth/.well-known/openid-configuration").json()
    assert doc["client_id_metadata_document_supported"] is True
    assert doc["token_endpoint_auth_methods_supported"] == ["none"]
    assert doc["revocation_endpoint"] == f"{BASE}/v1/revoke"
    for path in (
        "/.well-known/oauth-authorization-server/api/auth",
        "/api/auth/.well-known/oauth-authorization-server",
    ):
        response = cimd.client.get(path)
        assert response.status_code == 200, path
        assert response.json() == doc


def test_rfc8414_metadata_is_not_found_without_the_authorization_server() -> None:
    raw = config(staticClients=[], experimentalRefreshToken={"enabled": False})
    with make_client(build(raw, FakeClock())) as client:
        assert client.get("/.well-known/oauth-authorization-server/api/auth").status_code == 404
        assert client.get("/api/auth/.well-known/oauth-authorization-server").status_code == 404


def test_the_cli_document(cimd: Cimd) -> None:
    response = cimd.client.get("/api/auth/.well-known/oauth-client/cli.json")
    assert response.status_code == 200
    assert response.json() == {
        "client_id": f"{BASE}/.well-known/oauth-client/cli.json",
        "client_name": "Backstage CLI",
        "redirect_uris": ["http://127.0.0.1:8055/callback"],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid offline_access",
    }


def test_a_document_client_signs_in_refreshes_and_revokes_with_its_id(cimd: Cimd) -> None:
    client = cimd.client
    verifier, challenge = pkce()
    response = authorize(client, cimd.client_id, challenge=challenge)
    assert response.status_code == 302, response.text
    session_id = response.headers["location"].rsplit("/", 1)[1]
    assert response.headers["location"].startswith(f"{APP_BASE_URL}/oauth2/authorize/")
    session = client.get(f"/api/auth/v1/sessions/{session_id}").json()
    assert session["clientName"] == "Test MCP"
    assert session["clientId"] == cimd.client_id
    assert session["clientHost"] == "127.0.0.1"
    code = approve(client, session_id)["code"][0]
    token = client.post(
        "/api/auth/v1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": cimd.client_id,
        },
    )
    assert token.status_code == 200, token.text
    refresh_token = token.json()["refresh_token"]
    # The document is gone: refresh and revocation still work by client id alone.
    cimd.docs.replies.clear()
    refreshed = client.post(
        "/api/auth/v1/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": cimd.client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    current = refreshed.json()["refresh_token"]
    revoked = client.post(
        "/api/auth/v1/revoke", data={"token": current, "client_id": cimd.client_id}
    )
    assert revoked.status_code == 200
    again = client.post(
        "/api/auth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": current, "client_id": cimd.client_id},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_revocation_by_an_id_no_pattern_allows_is_refused(cimd: Cimd) -> None:
    response = cimd.client.post(
        "/api/auth/v1/revoke",
        data={"token": "x", "client_id": cimd.docs.url("/other.json")},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def _error(response: Any) -> str:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    return str(response.json()["error"]["message"])


def test_redirect_uri_rules(cimd: Cimd) -> None:
    assert (
        _error(authorize(cimd.client, cimd.client_id, "http://127.0.0.1:9999/other"))
        == "Invalid redirect_uri 'http://127.0.0.1:9999/other', not registered in client metadata"
    )
    assert (
        _error(authorize(cimd.client, cimd.client_id, "https://evil.example/callback"))
        == "Invalid redirect_uri 'https://evil.example/callback'"
    )


def test_client_ids_outside_the_patterns_are_refused(cimd: Cimd) -> None:
    other = cimd.docs.client_document("/other.json")
    assert _error(authorize(cimd.client, other)) == f"Invalid client_id '{other}'"
    assert _error(authorize(cimd.client, "https://x.example/")) == (
        "Invalid client_id: must have a path component"
    )
    assert cimd.docs.requests == []


def test_documents_are_cached_and_refetched_after_max_age(cimd: Cimd) -> None:
    for _ in range(3):
        assert authorize(cimd.client, cimd.client_id).status_code == 302
    assert len(cimd.docs.requests) == 1
    cimd.clock.advance(301)
    assert authorize(cimd.client, cimd.client_id).status_code == 302
    assert len(cimd.docs.requests) == 2


def test_cache_control_max_age_and_failures() -> None:
    clock = FakeClock()
    with document_server() as docs:
        good = docs.client_document("/good.json")
        docs.replies["/good.json"].headers["Cache-Control"] = "public, max-age=10"
        bad = docs.url("/bad.json")
        with make_client(build(cimd_config([good, bad]), clock)) as client:
            assert authorize(client, good).status_code == 302
            clock.advance(11)
            assert authorize(client, good).status_code == 302
            assert len(docs.requests) == 2
            assert _error(authorize(client, bad)) == "Failed to fetch client metadata"
            assert _error(authorize(client, bad)) == "Failed to fetch client metadata"
            assert len(docs.requests) == 3  # the failure is remembered
            docs.client_document("/bad.json")
            clock.advance(31)
            assert authorize(client, bad).status_code == 302


def test_a_wildcard_pattern_must_not_reach_internal_addresses() -> None:
    resolver = FakeResolver({"mcp.internal.example": ["10.0.0.7"]})
    raw = cimd_config(["https://*.internal.example/*"])
    with make_client(build(raw, FakeClock(), resolver)) as client:
        client_id = "https://mcp.internal.example/client.json"
        assert _error(authorize(client, client_id)) == "Invalid client_id URL"


def test_documents_alone_mount_the_routes_and_the_alias_works() -> None:
    with document_server() as docs:
        client_id = docs.client_document()
        raw = config(
            staticClients=[],
            experimentalClientIdMetadataDocuments={
                "enabled": True,
                "allowedClientIdPatterns": [client_id],
            },
        )
        with make_client(build(raw, FakeClock())) as client:
            assert authorize(client, client_id).status_code == 302


def test_document_client_ids_are_refused_while_documents_are_off() -> None:
    with make_client(build(config(), FakeClock())) as client:
        assert _error(authorize(client, "https://x.example/c.json")) == (
            "Client ID metadata documents not enabled"
        )
        assert _error(authorize(client, "https://x.example/c.json?q=1")) == (
            "Invalid client_id: must not contain a query string"
        )


def test_static_clients_sessions_have_backstages_keys_only(world: World) -> None:
    session_id = start(world.client)
    session = world.client.get(f"/api/auth/v1/sessions/{session_id}").json()
    assert set(session) == {"id", "clientId", "clientName", "scope", "redirectUri"}
