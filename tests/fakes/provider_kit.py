"""Test support for the provider tests (the conformance suite itself runs every registered
provider from ``tests/providers/test_conformance.py``).

- ``fixed_endpoints``: a provider's config with every endpoint at the ``FakeIdP``.
- ``resolver_context`` is an ``AuthResolverContext`` over an ``InMemoryCatalog``.
- ``app_client`` + ``browser_sign_in``: the provider behind ``create_app`` and the real flow
  handlers, for what only shows end to end (``/start`` pass-through parameters, cookies).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx2

from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import TokenIssuer
from app.providers.base import OAuthAuthenticator
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDefinition
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import (
    APP_BASE_URL,
    BACKEND_BASE_URL,
    JarlessClient,
    make_client,
)
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP
from tests.handlers.helpers import set_cookies, start

ConfigBuilder = Callable[[FakeIdP], dict[str, Any]]
ServiceFactory = Callable[[FakeIdP], Callable[[httpx2.Request], httpx2.Response]]
MakeProvider = Callable[[str], OAuthAuthenticator]
Check = Callable[[MakeProvider, FakeIdP], Awaitable[None]]


def fixed_endpoints(fake: FakeIdP) -> dict[str, Any]:
    """test_conformance's ``_fixed_endpoints``: every ``x-endpoints`` URL at the fake."""
    return {
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "x-endpoints": {
            "authorizationUrl": fake.url("authorize"),
            "tokenUrl": fake.url("token"),
            "profileUrl": fake.url("userinfo"),
            "revocationUrl": fake.url("revocation"),
        },
    }


def resolver_context(users: Sequence[CatalogUser] = ()) -> AuthResolverContext:
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth", key_store=MemoryKeyStore(), clock=FakeClock()
    )
    return AuthResolverContext(issuer, InMemoryCatalog(users))


# -- end to end, through create_app and the real flow handlers ---------------------------


def app_client(
    provider_id: str,
    definition: ProviderDefinition,
    env_config: dict[str, Any],
    *,
    transport: httpx2.AsyncBaseTransport,
    clock: FakeClock,
) -> JarlessClient:
    """A test client for an app serving one provider (environment ``development``)."""
    raw = {
        "app": {"baseUrl": APP_BASE_URL},
        "backend": {"baseUrl": BACKEND_BASE_URL},
        "auth": {
            "session": {"secret": "provider-tests-session-secret"},
            "providers": {provider_id: {"development": env_config}},
        },
    }
    app = create_app(
        read_settings(raw),
        development=True,
        deps=Dependencies(
            clock=clock, transport=transport, providers={**REGISTRY, provider_id: definition}
        ),
        validate_responses=True,
    )
    return make_client(app)


def browser_sign_in(
    client: JarlessClient, idp: FakeIdP, provider_id: str, **start_params: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """/start, the user at the IdP, /handler/frame: the JSON result and the cookies set."""
    started = start(client, provider_id, **start_params)
    code = idp.authorize(started.response.headers["location"])
    response = client.get(
        f"/api/auth/{provider_id}/handler/frame",
        params={"code": code, "state": started.state},
        headers={**started.cookie_header, "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    jar = {c.name: c.value for c in set_cookies(response) if c.value and not c.has("Domain")}
    result: dict[str, Any] = response.json()
    assert "error" not in result, result
    return result, jar
