"""Plugin tokens where Backstage accepts service or user credentials: the offline-session
revoke route (service only), userinfo (Backstage's answers for plugin tokens), and our own
plugin JWKS at /api/auth/.backstage/auth/v1/jwks.json."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest

from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.plugin_keys import DatabasePluginKeys, MemoryPublicKeyRows
from app.identity.plugin_tokens import PluginTokenIssuer, limited_user_token
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.authz.conftest import GUEST, code_grant, config, user_token
from tests.fakes.app_factory import JarlessClient, make_client
from tests.fakes.clock import FakeClock

REVOKE = "/api/auth/v1/offline-sessions/revoke"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.catalog = PluginTokenIssuer(
            DatabasePluginKeys(MemoryPublicKeyRows(), self.clock),
            self.clock,
            own_plugin_id="catalog",
        )
        self.client: JarlessClient

    async def transport(self, request: httpx2.Request) -> httpx2.Response:
        # discovery's internal fallback: http://localhost:7007/api/<plugin>
        if str(request.url) == "http://localhost:7007/api/catalog/.backstage/auth/v1/jwks.json":
            return httpx2.Response(200, json={"keys": await self.catalog.public_keys()})
        return httpx2.Response(404)


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    app = create_app(
        read_settings(config()),
        development=True,
        deps=Dependencies(
            clock=world.clock,
            providers=REGISTRY,
            catalog=InMemoryCatalog([CatalogUser(ref=GUEST)]),
            transport=httpx2.MockTransport(world.transport),
        ),
        validate_responses=True,
    )
    with make_client(app) as client:
        world.client = client
        yield world


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issue(world: World, *, obo: bool = False) -> str:

    on_behalf_of = limited_user_token(user_token(world.client)) if obo else None
    return asyncio.run(world.catalog.issue("auth", on_behalf_of=on_behalf_of))


def test_a_plugin_token_revokes_offline_sessions(world: World) -> None:
    code_grant(world.client)
    body = {"userEntityRef": "development/guest"}
    ok = world.client.post(REVOKE, json=body, headers=_bearer(_issue(world)))
    assert (ok.status_code, ok.json()) == (200, {"revokedCount": 1})
    # On behalf of a user it is that user: a service-only route refuses it.
    user = world.client.post(REVOKE, json=body, headers=_bearer(_issue(world, obo=True)))
    assert user.status_code == 403
    assert user.json()["error"]["message"] == "This endpoint does not allow 'user' credentials"
    wrong = world.client.post(REVOKE, json=body, headers=_bearer(_issue(world)[:-4] + "AAAA"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "Failed plugin token verification"


def test_userinfo_answers_plugin_tokens_as_backstage_does(world: World) -> None:
    service = world.client.get("/api/auth/v1/userinfo", headers=_bearer(_issue(world)))
    assert service.status_code == 400
    assert service.json()["error"]["message"] == (
        "Userinfo endpoint must be called with a token that represents a user principal"
    )
    # A user principal, but Backstage looks up the plugin token's own sub: no user info.
    obo = world.client.get("/api/auth/v1/userinfo", headers=_bearer(_issue(world, obo=True)))
    assert (obo.status_code, obo.text) == (404, "User info not found")


def test_our_plugin_jwks_route(world: World) -> None:
    response = world.client.get("/api/auth/.backstage/auth/v1/jwks.json")
    assert response.status_code == 200
    assert set(response.json()) == {"keys"}
