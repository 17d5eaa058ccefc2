"""The app under test with the five proxy providers, their fake key endpoints and a catalog.

``build`` runs the real ``create_app`` with ``Dependencies(clock, transport=MockTransport(
ProxyKeyServer), catalog, providers={**REGISTRY, **PROXY_DEFINITIONS})``. The test client's
peer address is what ``client=`` says: ``PROXY_PEER`` is inside the configured
``trustedProxies``, ``OUTSIDE_PEER`` is not (Starlette's default, ``"testclient"``, is no
address at all).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import httpx2
from connexion import AsyncApp
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import TokenIssuer
from app.providers import azure_easyauth
from app.providers.base import ProxyRequest
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDefinition, ProviderDeps, ProxyProviderDefinition
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.clock import FakeClock
from tests.fakes.proxy_keys import (
    ALB_ARN,
    ALB_ISSUER,
    CF_AUDIENCE,
    DELETE,
    IAP_AUDIENCE,
    REGION,
    TEAM,
    ProxyKeyServer,
    unsigned_jwt,
)

BACKEND_BASE_URL = "http://localhost:7007"
PROXY_PEER = "10.20.30.40"
OUTSIDE_PEER = "203.0.113.9"
ENTRA_OID = "00000000-0000-0000-66f3-3332eca7ea81"

APP_SERVICE_ENV = {
    "WEBSITE_SKU": "PremiumV3",
    "WEBSITE_AUTH_ENABLED": "True",
    "WEBSITE_AUTH_DEFAULT_PROVIDER": "AzureActiveDirectory",
    "WEBSITE_AUTH_TOKEN_STORE": "true",
}

# What the registry would hold (azureEasyAuth checks the fake App Service environment).
PROXY_DEFINITIONS: dict[str, ProviderDefinition] = {
    **{pid: REGISTRY[pid] for pid in ("awsalb", "gcpIap", "cfaccess", "oauth2Proxy")},
    "azureEasyAuth": ProxyProviderDefinition(
        factory=azure_easyauth.make_create(APP_SERVICE_ENV),
        resolvers=REGISTRY["azureEasyAuth"].resolvers,
    ),
}
PROXY_IDS = tuple(PROXY_DEFINITIONS)

JANE = CatalogUser(
    ref="user:default/jane",
    email="jane@example.com",
    annotations={
        "google.com/email": "jane@example.com",
        "google.com/user-id": "1122334455",
        "graph.microsoft.com/user-id": ENTRA_OID,
    },
    member_of=("group:default/engineering",),
)
BOT = CatalogUser(ref="user:default/ci-bot", email="ci-bot@example.com")


def _resolvers(*names: str) -> dict[str, Any]:
    return {"resolvers": [{"resolver": name} for name in names]}


PROVIDERS_CONFIG: dict[str, Any] = {
    "awsalb": {
        "issuer": ALB_ISSUER,
        "region": REGION,
        "signer": ALB_ARN,
        "signIn": _resolvers("emailMatchingUserEntityProfileEmail"),
    },
    "gcpIap": {
        "audience": IAP_AUDIENCE,
        "signIn": _resolvers("idMatchingUserEntityAnnotation"),
    },
    "cfaccess": {
        "teamName": TEAM,
        "audience": CF_AUDIENCE,
        "serviceTokens": [{"token": "ci-bot.access", "subject": "ci-bot@example.com"}],
        "signIn": _resolvers("emailMatchingUserEntityProfileEmail"),
    },
    "oauth2Proxy": {
        "trustedProxies": ["10.0.0.0/8", "127.0.0.1"],
        "signIn": _resolvers("forwardedUserMatchingUserEntityName"),
    },
    "azureEasyAuth": {
        "trustedProxies": ["10.20.30.0/24"],
        "signIn": _resolvers("idMatchingUserEntityAnnotation"),
    },
}


def config(providers: dict[str, Any] | None = None, **backend: Any) -> dict[str, Any]:
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": BACKEND_BASE_URL, **backend},
        "auth": {
            "session": {"secret": "proxy-tests-session-secret-of-32-or-more"},
            "providers": copy.deepcopy(PROVIDERS_CONFIG if providers is None else providers),
        },
    }


def build(
    server: ProxyKeyServer,
    raw_config: dict[str, Any] | None = None,
    *,
    validate_responses: bool = True,
) -> AsyncApp:
    return create_app(
        read_settings(raw_config or config()),
        development=False,
        deps=Dependencies(
            clock=server.clock,
            transport=httpx2.MockTransport(server),
            catalog=InMemoryCatalog([JANE, BOT]),
            providers={**REGISTRY, **PROXY_DEFINITIONS},
        ),
        validate_responses=validate_responses,
    )


def client(app: AsyncApp, peer: str = PROXY_PEER) -> TestClient:
    return TestClient(app, base_url=BACKEND_BASE_URL, follow_redirects=False, client=(peer, 50123))


def alb(server: ProxyKeyServer, **kwargs: Any) -> dict[str, str]:
    """The headers an AWS ALB adds (``kwargs`` shape the assertion; so for iap, cf)."""
    return {"x-amzn-oidc-data": server.alb_token(**kwargs), "x-amzn-oidc-accesstoken": "at"}


def iap(server: ProxyKeyServer, **kwargs: Any) -> dict[str, str]:
    return {"x-goog-iap-jwt-assertion": server.iap_token(**kwargs)}


def cf(server: ProxyKeyServer, **kwargs: Any) -> dict[str, str]:
    return {"cf-access-jwt-assertion": server.cf_token(**kwargs)}


def token_claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def entra_id_token(**overrides: Any) -> str:
    claims = {
        "aud": "6c8f2bde-0000-0000-0000-000000000000",
        "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        "name": "Jane Doe",
        "email": "jane@example.com",
        "oid": ENTRA_OID,
        "preferred_username": "jane@example.com",
        "ver": "2.0",
        **overrides,
    }
    return unsigned_jwt({k: v for k, v in claims.items() if v is not DELETE})


# -- unit-test helpers ---------------------------------------------------------------------


def deps(server: ProxyKeyServer, *, development: bool = False) -> ProviderDeps:
    return ProviderDeps(
        clock=server.clock, development=development, transport=httpx2.MockTransport(server)
    )


def proxy_request(
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    peer: str | None = PROXY_PEER,
) -> ProxyRequest:
    return ProxyRequest(headers=headers or {}, cookies=cookies or {}, client_host=peer)


def resolver_context(*users: CatalogUser) -> AuthResolverContext:
    issuer = TokenIssuer(
        issuer=f"{BACKEND_BASE_URL}/api/auth", key_store=MemoryKeyStore(), clock=FakeClock()
    )
    return AuthResolverContext(issuer, InMemoryCatalog(users or (JANE, BOT)))
