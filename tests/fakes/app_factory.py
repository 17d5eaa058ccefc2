"""The app under test: real ``create_app`` with a fake clock and the stub providers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import httpx2
from connexion import AsyncApp
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDefinition
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubProvider

APP_BASE_URL = "http://localhost:3000"
BACKEND_BASE_URL = "http://localhost:7007"
AUTH_BASE_URL = f"{BACKEND_BASE_URL}/api/auth"

_SIGN_IN = {
    "resolvers": [
        {
            "resolver": "emailLocalPartMatchingUserEntityName",
            "dangerouslyAllowSignInWithoutUserInCatalog": True,
        }
    ]
}

BASE_CONFIG: dict[str, Any] = {
    "app": {"baseUrl": APP_BASE_URL},
    "backend": {"baseUrl": BACKEND_BASE_URL},
    "auth": {
        "session": {"secret": "handler-tests-session-secret"},
        "experimentalExtraAllowedOrigins": ["https://*.example.com"],
        "providers": {
            # Non-persisting OAuth provider; `nosignin` has no sign-in resolver.
            "stub": {
                "development": {
                    "clientId": "stub-client",
                    "clientSecret": "stub-secret",
                    "signIn": _SIGN_IN,
                },
                "nosignin": {"clientId": "stub-client", "clientSecret": "stub-secret"},
            },
            # Scope-persisting OAuth provider (like github/oidc), required scope "openid".
            "stubpersist": {
                "development": {
                    "clientId": "stub-client",
                    "clientSecret": "stub-secret",
                    "signIn": _SIGN_IN,
                },
            },
            "guest": {},
            # No module registers this id: it must not be mounted.
            "nonexistent": {"development": {"clientId": "x", "clientSecret": "y"}},
        },
    },
}


def config(**auth_overrides: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE_CONFIG)
    out["auth"].update(auth_overrides)
    return out


def build_app(
    *,
    clock: FakeClock,
    stub: StubProvider,
    stub_persist: StubProvider,
    raw_config: Mapping[str, Any] | None = None,
    validate_responses: bool = True,
) -> AsyncApp:
    settings = read_settings(raw_config or config())
    providers: dict[str, ProviderDefinition] = {
        **REGISTRY,
        "stub": stub.definition,
        "stubpersist": stub_persist.definition,
    }
    return create_app(
        settings,
        development=True,
        deps=Dependencies(clock=clock, providers=providers),
        validate_responses=validate_responses,
    )


class JarlessClient(TestClient):
    """A TestClient that never sends cookies from its jar: a test sends exactly the
    ``Cookie:`` header it passes (httpx's per-request ``cookies=`` is deprecated)."""

    def _merge_cookies(self, cookies: Any = None) -> Any:
        return httpx2.Cookies()


def make_client(app: AsyncApp) -> JarlessClient:
    return JarlessClient(app, base_url=BACKEND_BASE_URL, follow_redirects=False)


def registry_app(**backend: Any) -> AsyncApp:
    """The real app with the real provider registry and clock: ``guest`` and an ``oauth2``
    provider whose endpoints nobody answers (port 9); ``backend`` keys added to
    ``backend.baseUrl`` (``cors=...``)."""
    settings = read_settings(
        {
            "app": {"baseUrl": APP_BASE_URL},
            "backend": {"baseUrl": BACKEND_BASE_URL, **backend},
            "auth": {
                "session": {"secret": "s"},
                "providers": {
                    "guest": {},
                    "oauth2": {
                        "development": {
                            "clientId": "a",
                            "clientSecret": "b",
                            "authorizationUrl": "http://127.0.0.1:9/authorize",
                            "tokenUrl": "http://127.0.0.1:9/token",
                        }
                    },
                },
            },
        }
    )
    return create_app(settings, development=True, deps=Dependencies(clock=SystemClock()))
