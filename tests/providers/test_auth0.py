"""The ``auth0`` provider against a fake Auth0 tenant.

Backstage: ``plugins/auth-backend-module-auth0-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, InputError
from app.identity.catalog import CatalogUser
from app.identity.resolvers import COMMON_RESOLVERS, build_sign_in_resolver
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import auth0
from app.providers.auth0 import Auth0Authenticator
from app.providers.base import AuthenticateInput, LogoutInput, RefreshInput, StartInput
from app.providers.oauth2_base import UpstreamError
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.app_factory import JarlessClient
from tests.fakes.clock import FakeClock
from tests.fakes.fake_auth0 import DOMAIN, FakeAuth0
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.provider_kit import (
    app_client,
    browser_sign_in,
    resolver_context,
)
from tests.handlers.helpers import XRW, assert_json_error, cookie_header, location_query
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.auth0.development"
CALLBACK = callback("auth0")
SCOPE = "openid profile email offline_access"

# What the registry must hold for this provider (the conformance suite runs it from there).
DEFINITION = OAuthProviderDefinition(
    factory=auth0.create,
    resolvers=COMMON_RESOLVERS,
    start_params=auth0.START_PARAMS,
    describe_sign_out=auth0.describe_sign_out,
)


MakeAuth0 = Callable[..., Auth0Authenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeAuth0:
    return FakeAuth0(fake)


@pytest.fixture
async def make_auth0(
    fake: FakeIdP, service: FakeAuth0, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeAuth0]:
    created: list[Auth0Authenticator] = []

    def make(**config: Any) -> Auth0Authenticator:
        raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret, "domain": DOMAIN}
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = auth0.create({**raw, **config}, PATH, deps).authenticator
        assert isinstance(authenticator, Auth0Authenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _start(auth: Auth0Authenticator, scope: str = SCOPE, **extra: str) -> dict[str, str]:
    started = await auth.start(
        StartInput(
            state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS, extra_params=extra
        )
    )
    assert started.status == 302
    assert origin_and_path(started.url) == f"https://{DOMAIN}/authorize"
    return query_of(started.url)


# -- /start ----------------------------------------------------------------------------


async def test_authorize_url_defaults(make_auth0: MakeAuth0, fake: FakeIdP) -> None:
    assert await _start(make_auth0()) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
        # passport-auth0 passes Backstage's accessType option through verbatim.
        "accessType": "offline",
        "prompt": "consent",
    }


async def test_config_overrides_reach_the_authorize_url(make_auth0: MakeAuth0) -> None:
    query = await _start(
        make_auth0(
            audience="https://api.example.com",
            connection="github",
            connectionScope="read:org",
            prompt="login",
            organization="org_123",
        )
    )
    assert query["audience"] == "https://api.example.com"
    assert query["connection"] == "github"
    assert query["connection_scope"] == "read:org"
    assert query["prompt"] == "login"
    assert query["organization"] == "org_123"


async def test_prompt_auto_is_omitted(make_auth0: MakeAuth0) -> None:
    assert "prompt" not in await _start(make_auth0(prompt="auto"))


async def test_connection_scope_needs_a_connection(make_auth0: MakeAuth0) -> None:
    assert "connection_scope" not in await _start(make_auth0(connectionScope="read:org"))


async def test_start_params_pass_through(make_auth0: MakeAuth0) -> None:
    query = await _start(
        make_auth0(),
        organization="org_9",
        invitation="inv_1",
        screen_hint="signup",
        login_hint="jane@example.com",
    )
    assert query["organization"] == "org_9"
    assert query["invitation"] == "inv_1"
    assert query["screen_hint"] == "signup"
    assert query["login_hint"] == "jane@example.com"
    assert auth0.START_PARAMS == ("organization", "invitation", "screen_hint", "login_hint")


async def test_empty_start_params_are_dropped(make_auth0: MakeAuth0) -> None:
    query = await _start(make_auth0(), organization="", invitation="")
    assert "organization" not in query and "invitation" not in query


async def test_organization_mismatch_is_an_input_error(make_auth0: MakeAuth0) -> None:
    auth = make_auth0(organization="org_123")
    with pytest.raises(InputError) as info:
        await _start(auth, organization="org_other")
    assert info.value.status_code == 400
    assert info.value.message == (
        "Organization mismatch. The organization provided in the request does not match "
        "the organization configured in the strategy."
    )
    assert (await _start(auth, organization="org_123"))["organization"] == "org_123"


# -- the callback ----------------------------------------------------------------------


async def test_code_exchange_and_profile(make_auth0: MakeAuth0, fake: FakeIdP) -> None:
    result = await sign_in(make_auth0(), fake, provider="auth0", scope=SCOPE)

    token_call = fake.last_request_to("token")
    assert token_call.form["grant_type"] == "authorization_code"
    assert token_call.form["redirect_uri"] == CALLBACK
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    # passport-oauth2 authenticates the client in the body.
    assert token_call.form["client_id"] == fake.client_id
    assert token_call.form["client_secret"] == fake.client_secret
    assert token_call.basic_auth is None
    assert result.session.id_token and result.session.refresh_token
    assert result.profile == ProfileInfo(
        email="jane.doe@example.com",
        display_name="Jane Doe",
        picture="https://s.gravatar.test/avatar/jane.png",
    )
    assert result.sign_in_facts["user_id"] == fake.subject


async def test_profile_gaps(make_auth0: MakeAuth0, fake: FakeIdP, service: FakeAuth0) -> None:
    for key in ("name", "picture"):
        del service.userinfo[key]
    service.userinfo["email_verified"] = False
    fake.id_token_claims["picture"] = "https://idp.example.test/from-id-token.png"

    result = await sign_in(make_auth0(), fake, provider="auth0", scope=SCOPE)

    # No name: the user id (passport-auth0 profile.id); no picture: the ID token's; an
    # address Auth0 flags as unverified is not used.
    assert result.profile == ProfileInfo(
        display_name=fake.subject, picture="https://idp.example.test/from-id-token.png"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"error": "access_denied", "error_description": "nope"}, "Authentication rejected, nope"),
        (
            {"error": "unauthorized", "error_description": "blocked"},
            "Authentication rejected, blocked",
        ),
        ({"error": "server_error"}, "Authentication rejected, server_error"),
    ],
)
async def test_every_error_callback_is_a_rejection(
    make_auth0: MakeAuth0, params: dict[str, str], message: str
) -> None:
    with pytest.raises(BackstageError) as info:
        await make_auth0().authenticate(
            AuthenticateInput(params=params, callback_url=CALLBACK, secrets=SECRETS)
        )
    assert info.value.message == message


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(make_auth0: MakeAuth0, fake: FakeIdP, mode: str) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await sign_in(make_auth0(), fake, provider="auth0", scope=SCOPE)


@pytest.mark.parametrize("mode", ["5xx", "timeout", 401])
async def test_failing_userinfo(
    make_auth0: MakeAuth0, fake: FakeIdP, service: FakeAuth0, mode: str | int
) -> None:
    service.fail("userinfo", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await sign_in(make_auth0(), fake, provider="auth0", scope=SCOPE)


# -- refresh ---------------------------------------------------------------------------


async def test_refresh_fetches_the_profile_at_most_once_a_minute_per_user(
    make_auth0: MakeAuth0, fake: FakeIdP, service: FakeAuth0, clock: FakeClock
) -> None:
    auth = make_auth0()
    signed_in = await sign_in(auth, fake, provider="auth0", scope=SCOPE)
    refresh_token = signed_in.session.refresh_token
    assert refresh_token
    userinfo_calls = len(service.requests_to("/userinfo"))

    first = await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=SCOPE))
    service.userinfo["name"] = "Jane Renamed"
    second = await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=SCOPE))

    assert fake.last_request_to("token").form["grant_type"] == "refresh_token"
    assert second.session.access_token != first.session.access_token
    # Within the minute the profile comes from the cache (keyed by the ID token's sub).
    assert second.profile.display_name == "Jane Doe"
    assert len(service.requests_to("/userinfo")) == userinfo_calls

    clock.advance(auth0.PROFILE_CACHE_SECONDS + 1)
    third = await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=SCOPE))
    assert third.profile.display_name == "Jane Renamed"


async def test_refresh_without_id_token_always_fetches(
    make_auth0: MakeAuth0, fake: FakeIdP, service: FakeAuth0
) -> None:
    auth = make_auth0()
    refresh_token = fake.issue_refresh_token(scope="offline_access")
    for _ in range(2):
        await auth.refresh(RefreshInput(refresh_token=refresh_token, scope="offline_access"))
    assert len(service.requests_to("/userinfo")) == 2


async def test_refresh_cache_is_per_user(
    make_auth0: MakeAuth0, fake: FakeIdP, service: FakeAuth0
) -> None:
    auth = make_auth0()
    refresh_token = fake.issue_refresh_token(scope=SCOPE)
    await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=SCOPE))
    fake.subject = "auth0|someone-else"
    service.userinfo["name"] = "Someone Else"
    other = await auth.refresh(RefreshInput(refresh_token=refresh_token, scope=SCOPE))
    assert other.profile.display_name == "Someone Else"


async def test_refresh_invalid_grant(make_auth0: MakeAuth0) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await make_auth0().refresh(RefreshInput(refresh_token="rt-unknown", scope=SCOPE))


# -- logout ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "origin", "url"),
    [
        (
            {},
            "http://localhost:3000",
            f"https://{DOMAIN}/v2/logout?client_id=backstage-client"
            "&returnTo=http%3A%2F%2Flocalhost%3A3000",
        ),
        (
            {"federatedLogout": True},
            "https://backstage.example.com",
            f"https://{DOMAIN}/v2/logout?federated=&client_id=backstage-client"
            "&returnTo=https%3A%2F%2Fbackstage.example.com",
        ),
        ({}, None, f"https://{DOMAIN}/v2/logout?client_id=backstage-client"),
    ],
)
async def test_logout_returns_auth0s_logout_url(
    make_auth0: MakeAuth0, config: dict[str, Any], origin: str | None, url: str
) -> None:
    result = await make_auth0(**config).logout(LogoutInput(refresh_token="rt", app_origin=origin))
    assert result.logout_url == url


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"domain": "https://example.eu.auth0.com"}, "domain: must be a host name"),
        ({"domain": "example.eu.auth0.com/"}, "domain: must be a host name"),
        ({"domain": None}, "domain"),
        ({"federatedLogout": "sometimes"}, "federatedLogout"),
    ],
)
def test_invalid_config(config: dict[str, Any], message: str) -> None:
    raw = {"clientId": "id", "clientSecret": "secret", "domain": DOMAIN, **config}
    if config.get("domain", "") is None:
        del raw["domain"]
    with pytest.raises(ConfigError, match=f"{PATH}.{message}"):
        auth0.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))


def test_domain_with_port_is_accepted() -> None:
    raw = {"clientId": "id", "clientSecret": "secret", "domain": "login.example.com:8443"}
    build = auth0.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))
    assert build.authenticator.endpoints.token_url == "https://login.example.com:8443/oauth/token"  # type: ignore[attr-defined]


# -- sign-in resolvers -----------------------------------------------------------------


async def test_common_resolvers(make_auth0: MakeAuth0, fake: FakeIdP) -> None:
    result = await sign_in(make_auth0(), fake, provider="auth0", scope=SCOPE)
    resolver = build_sign_in_resolver(
        [{"resolver": "emailMatchingUserEntityProfileEmail"}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )
    ctx = resolver_context([CatalogUser(ref="user:default/jane", email="jane.doe@example.com")])
    identity = await resolver(SignInInfo("auth0", result.profile, result.sign_in_facts), ctx)
    assert identity.user_entity_ref == "user:default/jane"
    assert set(DEFINITION.resolvers) == set(COMMON_RESOLVERS)


# -- the conformance suite, as the registry will run it ----------------------------------


# -- end to end: the rendered spec declares the /start pass-through parameters -------------


@pytest.fixture
def client(fake: FakeIdP, service: FakeAuth0, clock: FakeClock) -> Iterator[JarlessClient]:
    env: dict[str, Any] = {
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "domain": DOMAIN,
    }
    env |= {"organization": "org_123", "federatedLogout": True}
    resolver = {"resolver": "emailLocalPartMatchingUserEntityName"}
    env["signIn"] = {"resolvers": [resolver | {"dangerouslyAllowSignInWithoutUserInCatalog": True}]}
    transport = httpx2.MockTransport(service)
    with app_client("auth0", DEFINITION, env, transport=transport, clock=clock) as client:
        yield client


def test_start_query_reaches_the_authorize_url(client: JarlessClient) -> None:
    response = client.get(
        "/api/auth/auth0/start",
        params={"env": "development", "screen_hint": "signup", "login_hint": "j@example.com"},
    )
    assert response.status_code == 302, response.text
    query = location_query(response)
    assert (query["organization"], query["screen_hint"], query["login_hint"]) == (
        "org_123",
        "signup",
        "j@example.com",
    )


def test_start_with_another_organization_is_a_400(client: JarlessClient) -> None:
    response = client.get(
        "/api/auth/auth0/start", params={"env": "development", "organization": "org_other"}
    )
    assert_json_error(response, 400, "InputError", auth0.ORGANIZATION_MISMATCH)


def test_sign_in_and_logout_through_the_handlers(client: JarlessClient, fake: FakeIdP) -> None:
    result, jar = browser_sign_in(client, fake, "auth0", scope=SCOPE)
    assert result["payload"]["profile"]["email"] == "jane.doe@example.com"
    identity = result["payload"]["backstageIdentity"]["identity"]
    assert identity["userEntityRef"] == "user:default/jane.doe"
    assert "auth0-refresh-token" in jar

    response = client.post(
        "/api/auth/auth0/logout?env=development",
        headers={**XRW, **cookie_header(jar), "Origin": "http://localhost:3000"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "logoutUrl": f"https://{DOMAIN}/v2/logout?federated=&client_id=backstage-client"
        "&returnTo=http%3A%2F%2Flocalhost%3A3000"
    }


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["auth0"]
    assert registered == DEFINITION
