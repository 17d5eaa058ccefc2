"""The auth plugin's actions registry and its who-am-i action."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from app.authz.actions import WHO_AM_I_ENTRY
from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.plugin_keys import DatabasePluginKeys, MemoryPublicKeyRows
from app.identity.plugin_tokens import PluginTokenIssuer, limited_user_token
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.authz.conftest import GUEST, SERVICE_TOKEN, World, build, config, user_token
from tests.fakes.app_factory import make_client
from tests.fakes.clock import FakeClock

ACTIONS = "/api/auth/.backstage/actions"
INVOKE = f"{ACTIONS}/v1/actions/auth:who-am-i/invoke"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(response: Any, status: int, name: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == {"name": name, "message": message}


def test_anyone_lists_the_actions(world: World) -> None:
    response = world.client.get(f"{ACTIONS}/v1/actions")
    assert response.status_code == 200
    assert response.json() == {"actions": [WHO_AM_I_ENTRY]}
    assert WHO_AM_I_ENTRY["id"] == "auth:who-am-i"
    _error(
        world.client.get(f"{ACTIONS}/v1/actions", headers=_bearer("not-a-token")),
        401,
        "AuthenticationError",
        "Illegal token",
    )


def test_status_is_for_services(world: World) -> None:
    status = world.client.get(f"{ACTIONS}/v1/status", headers=_bearer(SERVICE_TOKEN))
    assert status.status_code == 200
    assert status.json() == {"hasActions": True}
    _error(
        world.client.get(f"{ACTIONS}/v1/status"), 401, "AuthenticationError", "Missing credentials"
    )
    _error(
        world.client.get(f"{ACTIONS}/v1/status", headers=_bearer(user_token(world.client))),
        403,
        "NotAllowedError",
        "This endpoint does not allow 'user' credentials",
    )


def test_who_am_i_returns_the_users_entity_and_info(world: World) -> None:
    token = user_token(world.client)
    response = world.client.post(INVOKE, headers=_bearer(token), json={})
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["userInfo"] == {"userEntityRef": GUEST, "ownershipEntityRefs": [GUEST]}
    assert output["entity"]["kind"] == "User"
    assert output["entity"]["metadata"]["name"] == "guest"
    # Through v2's wrapped body.
    v2 = world.client.post(
        f"{ACTIONS}/v2/actions/auth:who-am-i/invoke", headers=_bearer(token), json={"input": {}}
    )
    assert v2.json() == response.json()


def test_who_am_i_on_behalf_of_a_user_through_a_plugin_token() -> None:
    """As Backstage's MCP actions backend calls it: a plugin token of its own (its keys at
    its discovery URL) whose ``obo`` is the user's limited token. The user info comes
    from that limited token and the stored user info, not from the plugin token."""
    clock = FakeClock()
    peer = PluginTokenIssuer(
        DatabasePluginKeys(MemoryPublicKeyRows(), clock), clock, own_plugin_id="mcp-actions"
    )
    peer_keys: list[dict[str, Any]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/mcp-actions/.backstage/auth/v1/jwks.json":
            return httpx2.Response(200, json={"keys": peer_keys})
        return httpx2.Response(404)

    app = create_app(
        read_settings(config()),
        development=True,
        deps=Dependencies(
            clock=clock,
            providers=REGISTRY,
            catalog=InMemoryCatalog([CatalogUser(ref=GUEST)]),
            transport=httpx2.MockTransport(answer),
        ),
        validate_responses=True,
    )
    with make_client(app) as client:
        obo = limited_user_token(user_token(client))
        token = asyncio.run(peer.issue("auth", on_behalf_of=obo))
        peer_keys.extend(asyncio.run(peer.public_keys()))
        response = client.post(INVOKE, headers=_bearer(token), json={})
    assert response.status_code == 200, response.text
    assert response.json()["output"]["userInfo"] == {
        "userEntityRef": GUEST,
        "ownershipEntityRefs": [GUEST],
    }


def test_who_am_i_refuses_services_and_anonymous_callers(world: World) -> None:
    _error(
        world.client.post(INVOKE, headers=_bearer(SERVICE_TOKEN), json={}),
        403,
        "NotAllowedError",
        "This action requires user credentials",
    )
    _error(
        world.client.post(INVOKE, json={}),
        403,
        "NotAllowedError",
        "Actions must be invoked by an authenticated principal, not an anonymous request",
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (INVOKE, [1], 400, 'Invalid input to action "auth:who-am-i"'),
        (INVOKE, "x", 400, 'Invalid input to action "auth:who-am-i"'),
        (
            f"{ACTIONS}/v2/actions/auth:who-am-i/invoke",
            {},
            400,
            'Invalid input to action "auth:who-am-i"',
        ),
        (
            f"{ACTIONS}/v2/actions/auth:who-am-i/invoke",
            {"input": {}, "secrets": {"a": "b"}},
            400,
            'Action "auth:who-am-i" does not accept secrets',
        ),
        (f"{ACTIONS}/v1/actions/auth:nope/invoke", {}, 404, 'Action "auth:nope" not found'),
    ],
)
def test_invocation_errors(world: World, path: str, body: Any, status: int, message: str) -> None:
    response = world.client.post(path, headers=_bearer(user_token(world.client)), json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"] == message


def test_who_am_i_for_a_user_gone_from_the_catalog() -> None:
    catalog = InMemoryCatalog([CatalogUser(ref=GUEST)])
    with make_client(build(config(), FakeClock(), catalog)) as client:
        token = user_token(client)
        catalog.__init__([])  # type: ignore[misc]  # the user leaves the catalog
        _error(
            client.post(INVOKE, headers=_bearer(token), json={}),
            404,
            "NotFoundError",
            f'User entity not found in the catalog for "{GUEST}"',
        )


def test_the_file_catalogs_document_is_the_entity() -> None:
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "guest", "namespace": "development", "labels": {"a": "b"}},
        "spec": {},
    }
    catalog = InMemoryCatalog([CatalogUser(ref=GUEST, entity=entity)])
    with make_client(build(config(), FakeClock(), catalog)) as client:
        response = client.post(INVOKE, headers=_bearer(user_token(client)), json={})
        assert response.json()["output"]["entity"] == entity
