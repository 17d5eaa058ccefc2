"""Test support for providers that are not in ``app.providers.registry.REGISTRY`` yet.

- ``run_conformance`` runs the checks of ``tests/providers/test_conformance.py`` for one
  provider, built from the ``ProviderDefinition`` the registry will hold and the
  ``CONFIG_BUILDERS`` entry it will get, each check against a fresh ``FakeIdP``. For a
  service the ``FakeIdP`` cannot play on its own (paths, JSON), ``service`` puts that
  service's fake (``tests/fakes/service_fake.py``) in front of it.
- ``resolver_context`` is an ``AuthResolverContext`` over an ``InMemoryCatalog``.
- ``app_client`` + ``browser_sign_in``: the provider behind ``create_app`` and the real flow
  handlers, for what only shows end to end (``/start`` pass-through parameters, cookies).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import TokenIssuer
from app.providers.base import OAuthAuthenticator
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDefinition, ProviderDeps
from app.server.application import Dependencies, create_app
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
ServiceFactory = Callable[[FakeIdP], Callable[[httpx.Request], httpx.Response]]
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


def conformance_checks(provider_id: str) -> list[Check]:
    """Every parametrization of the conformance suite's tests, for one provider."""
    from tests.providers import test_conformance as suite

    checks: list[Check] = [
        lambda make, fake: suite.test_oauth_flow_contract(make, fake, provider_id, False),
        lambda make, fake: suite.test_oauth_flow_contract(make, fake, provider_id, True),
        lambda make, fake: suite.test_access_denied_is_a_rejection(make, provider_id),
        lambda make, fake: suite.test_invalid_grant_is_an_authentication_error(
            make, fake, provider_id
        ),
    ]
    for mode in ("5xx", "garbage", "timeout"):
        checks.append(
            lambda make, fake, mode=mode: suite.test_token_endpoint_outage_is_an_upstream_error(
                make, fake, provider_id, mode
            )
        )
    return checks


@asynccontextmanager
async def provider_maker(
    definition: ProviderDefinition,
    builder: ConfigBuilder,
    *,
    service: ServiceFactory | None = None,
) -> AsyncIterator[tuple[FakeIdP, MakeProvider]]:
    clock = FakeClock()
    fake = FakeIdP(clock=clock)
    handler = service(fake) if service is not None else fake
    created: list[Any] = []

    def make(provider_id: str) -> OAuthAuthenticator:
        deps = ProviderDeps(clock=clock, development=True, transport=httpx.MockTransport(handler))
        build = definition.factory(builder(fake), f"auth.providers.{provider_id}.development", deps)
        created.append(build.authenticator)
        authenticator: OAuthAuthenticator = build.authenticator  # type: ignore[assignment]
        return authenticator

    try:
        yield fake, make
    finally:
        for authenticator in created:
            await authenticator.aclose()


async def run_conformance(
    definition: ProviderDefinition,
    provider_id: str,
    builder: ConfigBuilder,
    *,
    service: ServiceFactory | None = None,
    checks: Sequence[Check] | None = None,
) -> int:
    """Run the suite's checks; returns how many ran."""
    selected = conformance_checks(provider_id) if checks is None else checks
    for check in selected:
        async with provider_maker(definition, builder, service=service) as (fake, make):
            await check(make, fake)
    return len(selected)


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
    transport: httpx.AsyncBaseTransport,
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
