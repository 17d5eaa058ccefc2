"""Every OAuth provider in the registry honours the common ``OAuthAuthenticator`` contract.

Each provider id in ``app.providers.registry.REGISTRY`` with ``kind == "oauth"`` runs
start -> authenticate -> refresh -> logout against ``FakeIdP``. A provider added to the
registry is picked up automatically; until it has an entry in ``CONFIG_BUILDERS`` (its
config pointed at the fake) its conformance test FAILS, on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from app.core.errors import AuthenticationError, BackstageError
from app.identity.types import ProfileInfo
from app.oauth.scopes import merge_scopes
from app.providers.base import (
    AuthenticateInput,
    AuthResult,
    LogoutInput,
    LogoutResult,
    OAuthAuthenticator,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_bitbucket_server import HOST as BITBUCKET_SERVER_HOST
from tests.fakes.fake_bitbucket_server import FakeBitbucketServer
from tests.fakes.fake_idp import FakeIdP
from tests.fakes.fake_openshift import API_SERVER, OAUTH_SERVER, FakeOpenShift
from tests.fakes.fake_pinniped import FakePinniped
from tests.providers.helpers import SECRETS, STATE, callback, query_of

pytestmark = pytest.mark.anyio

ConfigBuilder = Callable[[FakeIdP], dict[str, Any]]


def _credentials(fake: FakeIdP) -> dict[str, Any]:
    return {"clientId": fake.client_id, "clientSecret": fake.client_secret}


# One entry per OAuth provider id: its environment config, pointed at the fake.
def _fixed_endpoints(fake: FakeIdP) -> dict[str, Any]:
    """Providers whose endpoints the service fixes (github, google, ...): ``x-endpoints``
    points every one of them at the fake."""
    return {
        **_credentials(fake),
        "x-endpoints": {
            "authorizationUrl": fake.url("authorize"),
            "tokenUrl": fake.url("token"),
            "profileUrl": fake.url("userinfo"),
            "revocationUrl": fake.url("revocation"),
        },
    }


CONFIG_BUILDERS: dict[str, ConfigBuilder] = {
    "oidc": lambda fake: {**_credentials(fake), "metadataUrl": fake.metadata_url},
    "oauth2": lambda fake: {
        **_credentials(fake),
        "authorizationUrl": fake.url("authorize"),
        "tokenUrl": fake.url("token"),
        "additionalScopes": ["openid", "email"],
    },
    "github": _fixed_endpoints,
    "gitlab": _fixed_endpoints,
    "google": _fixed_endpoints,
    "microsoft": lambda fake: {**_fixed_endpoints(fake), "tenantId": "conformance"},
    "okta": _fixed_endpoints,
    "auth0": lambda fake: {**_fixed_endpoints(fake), "domain": "tenant.auth0.test"},
    "bitbucket": _fixed_endpoints,
    "atlassian": _fixed_endpoints,
    "onelogin": lambda fake: {**_fixed_endpoints(fake), "issuer": fake.issuer},
    "bitbucketServer": lambda fake: {**_credentials(fake), "host": BITBUCKET_SERVER_HOST},
    "openshift": lambda fake: {
        **_credentials(fake),
        "authorizationUrl": f"{OAUTH_SERVER}/oauth/authorize",
        "tokenUrl": f"{OAUTH_SERVER}/oauth/token",
        "openshiftApiServerUrl": API_SERVER,
    },
    # FakePinniped serves its FederationDomain at the FakeIdP's issuer.
    "pinniped": lambda fake: {**_credentials(fake), "federationDomain": fake.issuer},
}

# Services FakeIdP cannot play alone (a profile that is not one userinfo-like call): their
# fake in front of it (tests/fakes/service_fake.py), OAuth endpoints forwarded to the FakeIdP.
SERVICE_FAKES: dict[str, Callable[[FakeIdP], Callable[[httpx2.Request], httpx2.Response]]] = {
    "bitbucketServer": FakeBitbucketServer,
    "openshift": FakeOpenShift,
    "pinniped": FakePinniped,
}

# Providers whose refresh re-checks the access token kept in the refresh cookie instead of a
# refresh grant (OpenShift issues no refresh token; backstage/backstage#25383).
REFRESH_REUSES_ACCESS_TOKEN = {"openshift"}

OAUTH_PROVIDERS = sorted(pid for pid, d in REGISTRY.items() if d.kind == "oauth")


def builder_for(provider_id: str) -> ConfigBuilder:
    builder = CONFIG_BUILDERS.get(provider_id)
    if builder is None:
        pytest.fail(
            f"OAuth provider {provider_id!r} is in app.providers.registry.REGISTRY but has no "
            f"FakeIdP config builder: add one to CONFIG_BUILDERS in "
            f"tests/providers/test_conformance.py (its environment config, with every "
            f"endpoint pointed at the fake identity provider)",
            pytrace=False,
        )
    return builder


MakeProvider = Callable[[str], OAuthAuthenticator]


@pytest.fixture
async def make_provider(
    fake: FakeIdP, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeProvider]:
    created: list[OAuthAuthenticator] = []

    def make(provider_id: str) -> OAuthAuthenticator:
        raw = builder_for(provider_id)(fake)
        path = f"auth.providers.{provider_id}.development"
        handler = SERVICE_FAKES.get(provider_id, lambda f: f)(fake)
        transport = httpx2.MockTransport(handler)
        provider_deps = ProviderDeps(clock=clock, development=True, transport=transport)
        build = REGISTRY[provider_id].factory(raw, path, provider_deps)
        authenticator = build.authenticator
        created.append(authenticator)  # type: ignore[arg-type]
        return authenticator  # type: ignore[return-value]

    yield make
    for authenticator in created:
        await authenticator.aclose()


def _scope(auth: OAuthAuthenticator) -> str:
    return " ".join(merge_scopes(auth.required_scopes, auth.additional_scopes))


async def _authenticate(auth: OAuthAuthenticator, fake: FakeIdP, provider_id: str) -> AuthResult:
    started = await auth.start(
        StartInput(
            state=STATE, scope=_scope(auth), callback_url=callback(provider_id), secrets=SECRETS
        )
    )
    code = fake.authorize(started.url)
    return await auth.authenticate(
        AuthenticateInput(
            params={"code": code, "state": STATE},
            callback_url=callback(provider_id),
            secrets=SECRETS,
        )
    )


def test_every_builder_names_a_registered_oauth_provider() -> None:
    assert set(CONFIG_BUILDERS) <= set(OAUTH_PROVIDERS)


def test_a_provider_without_a_builder_fails_rather_than_skips() -> None:
    with pytest.raises(pytest.fail.Exception, match="add one to CONFIG_BUILDERS"):
        builder_for("a-provider-added-later")


@pytest.mark.parametrize("rotate", [False, True], ids=["refresh-kept", "refresh-rotated"])
@pytest.mark.parametrize("provider_id", OAUTH_PROVIDERS)
async def test_oauth_flow_contract(
    make_provider: MakeProvider, fake: FakeIdP, provider_id: str, rotate: bool
) -> None:
    fake.rotate_refresh_tokens = rotate
    auth = make_provider(provider_id)
    cb = callback(provider_id)

    # start: a redirect to the IdP with our state and callback.
    started = await auth.start(
        StartInput(state=STATE, scope=_scope(auth), callback_url=cb, secrets=SECRETS)
    )
    assert started.status == 302
    query = query_of(started.url)
    assert query["state"] == STATE
    assert query["redirect_uri"] == cb
    assert query["client_id"] == fake.client_id
    assert query["response_type"] == "code"

    # authenticate: the code is exchanged at the token endpoint for a session.
    code = fake.authorize(started.url)
    result = await auth.authenticate(
        AuthenticateInput(params={"code": code, "state": STATE}, callback_url=cb, secrets=SECRETS)
    )
    assert fake.last_request_to("token").form["redirect_uri"] == cb
    assert result.session.access_token
    assert result.session.refresh_token
    assert isinstance(result.profile, ProfileInfo)
    info = result.session.provider_info()
    assert info["accessToken"] == result.session.access_token
    assert "scope" in info

    # refresh: a new session that still has a refresh token.
    old_refresh = result.session.refresh_token
    token_calls = len(fake.requests_to("token"))
    refreshed = await auth.refresh(RefreshInput(refresh_token=old_refresh, scope=_scope(auth)))
    if provider_id in REFRESH_REUSES_ACCESS_TOKEN:
        assert refreshed.session.access_token == old_refresh == result.session.access_token
        assert refreshed.session.refresh_token == old_refresh
        assert len(fake.requests_to("token")) == token_calls
    else:
        assert refreshed.session.access_token.startswith("at-")
        assert refreshed.session.access_token != result.session.access_token
        assert refreshed.session.refresh_token
        if rotate:
            assert refreshed.session.refresh_token != old_refresh
        else:
            assert refreshed.session.refresh_token == old_refresh
        assert fake.last_request_to("token").form["refresh_token"] == old_refresh

    # logout
    logged_out = await auth.logout(
        LogoutInput(
            refresh_token=refreshed.session.refresh_token, app_origin="http://localhost:3000"
        )
    )
    assert isinstance(logged_out, LogoutResult)


@pytest.mark.parametrize("provider_id", OAUTH_PROVIDERS)
async def test_access_denied_is_a_rejection(make_provider: MakeProvider, provider_id: str) -> None:
    auth = make_provider(provider_id)
    with pytest.raises(BackstageError, match="^Authentication rejected, "):
        await auth.authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope", "state": STATE},
                callback_url=callback(provider_id),
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("provider_id", OAUTH_PROVIDERS)
async def test_invalid_grant_is_an_authentication_error(
    make_provider: MakeProvider, fake: FakeIdP, provider_id: str
) -> None:
    auth = make_provider(provider_id)
    fake.fail("token", "invalid_grant")
    with pytest.raises(AuthenticationError):
        await _authenticate(auth, fake, provider_id)
    refresh_failure = (
        "^Invalid access token$"
        if provider_id in REFRESH_REUSES_ACCESS_TOKEN
        else "^Failed to refresh access token"
    )
    with pytest.raises(AuthenticationError, match=refresh_failure):
        await auth.refresh(RefreshInput(refresh_token="rt-unknown", scope=_scope(auth)))


@pytest.mark.parametrize("mode", ["5xx", "garbage", "timeout"])
@pytest.mark.parametrize("provider_id", OAUTH_PROVIDERS)
async def test_token_endpoint_outage_is_an_upstream_error(
    make_provider: MakeProvider, fake: FakeIdP, provider_id: str, mode: str
) -> None:
    auth = make_provider(provider_id)
    # Let discovery (if any) through first; only the token endpoint misbehaves.
    await auth.start(
        StartInput(state=STATE, scope="", callback_url=callback(provider_id), secrets=SECRETS)
    )
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await _authenticate(auth, fake, provider_id)
    assert info.value.status_code == 503
    if provider_id in REFRESH_REUSES_ACCESS_TOKEN:
        return  # its refresh never calls the token endpoint
    refresh_token = fake.issue_refresh_token()
    with pytest.raises(UpstreamError, match="^Failed to refresh access token"):
        await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=_scope(auth)))


@pytest.mark.parametrize("provider_id", OAUTH_PROVIDERS)
async def test_identity_provider_cookies_never_cross_users(
    fake: FakeIdP, clock: FakeClock, provider_id: str
) -> None:
    # One long-lived client per provider serves every user: a cookie the IdP sets while
    # serving one user must never be sent along with another user's calls.
    handler = SERVICE_FAKES.get(provider_id, lambda f: f)(fake)
    sent_cookies: list[str] = []

    def setting_cookies(request: httpx2.Request) -> httpx2.Response:
        if "cookie" in request.headers:
            sent_cookies.append(request.headers["cookie"])
        response = handler(request)
        response.headers["set-cookie"] = "idp_session=user-a; Path=/"
        return response

    raw = builder_for(provider_id)(fake)
    deps = ProviderDeps(
        clock=clock, development=True, transport=httpx2.MockTransport(setting_cookies)
    )
    auth: OAuthAuthenticator = (
        REGISTRY[provider_id]
        .factory(  # type: ignore[assignment]
            raw, f"auth.providers.{provider_id}.development", deps
        )
        .authenticator
    )
    try:
        first = await _authenticate(auth, fake, provider_id)
        await _authenticate(auth, fake, provider_id)
        await auth.refresh(
            RefreshInput(refresh_token=first.session.refresh_token or "", scope=_scope(auth))
        )
    finally:
        await auth.aclose()
    assert sent_cookies == []
