"""Shared inputs and a sign-in driver for provider tests against ``FakeIdP``."""

from __future__ import annotations

import binascii
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx2

from app.oauth.flow_secrets import FlowSecrets
from app.providers.base import AuthenticateInput, AuthResult, OAuthAuthenticator, StartInput
from app.providers.registry_types import OAuthFactory, ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP

SECRETS = FlowSecrets(
    code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    oidc_nonce="n-0S6_WzA2Mj-fake-nonce",
)
# An encoded Backstage state (hex of "nonce=...&env=development").
STATE = binascii.hexlify(b"nonce=abc123&env=development").decode()
CALLBACK_URL = "http://localhost:7007/api/auth/{provider}/handler/frame"
SCOPE = "openid profile email"


def callback(provider: str) -> str:
    return CALLBACK_URL.format(provider=provider)


def deps(fake: FakeIdP, clock: FakeClock, *, development: bool = True) -> ProviderDeps:
    return ProviderDeps(clock=clock, development=development, transport=httpx2.MockTransport(fake))


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def origin_and_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


async def sign_in(
    auth: OAuthAuthenticator,
    fake: FakeIdP,
    *,
    provider: str = "oidc",
    scope: str = SCOPE,
    secrets: FlowSecrets = SECRETS,
    **extra_params: Any,
) -> AuthResult:
    """start -> the user at the fake's authorize page -> callback -> authenticate."""
    started = await auth.start(
        StartInput(state=STATE, scope=scope, callback_url=callback(provider), secrets=secrets)
    )
    code = fake.authorize(started.url)
    return await auth.authenticate(
        AuthenticateInput(
            params={"code": code, "state": STATE, **extra_params},
            callback_url=callback(provider),
            secrets=secrets,
        )
    )


A = TypeVar("A", bound=OAuthAuthenticator)


class Authenticators(Generic[A]):
    """One provider's authenticators, each built against a fake service; ``aclose`` closes
    every one built (for the fixtures that hand out a builder)."""

    def __init__(self, create: OAuthFactory, path: str, kind: type[A]) -> None:
        self._create = create
        self._path = path
        self._kind = kind
        self._built: list[A] = []

    def build(self, service: Any, **config: Any) -> A:
        """With the service's client credentials and ``config`` (the environment's keys)."""
        raw = {"clientId": service.client_id, "clientSecret": service.client_secret, **config}
        deps = ProviderDeps(FakeClock(), True, httpx2.MockTransport(service))
        auth = self._create(raw, self._path, deps).authenticator
        assert isinstance(auth, self._kind)
        self._built.append(auth)
        return auth

    async def aclose(self) -> None:
        for auth in self._built:
            await auth.aclose()
