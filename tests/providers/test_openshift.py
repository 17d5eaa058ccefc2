"""The ``openshift`` provider against a fake OpenShift cluster.

Backstage: ``plugins/auth-backend-module-openshift-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError
from app.identity.catalog import CatalogUser
from app.identity.resolvers import build_sign_in_resolver
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import openshift
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.openshift import OpenShiftAuthenticator, access_token_object_name
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.app_factory import JarlessClient
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.fake_openshift import API_SERVER, OAUTH_SERVER, TOKENS_PREFIX, FakeOpenShift
from tests.fakes.provider_kit import (
    app_client,
    browser_sign_in,
    resolver_context,
)
from tests.handlers.helpers import XRW, cookie_header, set_cookies
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.openshift.development"
CALLBACK = callback("openshift")
SCOPE = "user:full"

# No common resolvers: Backstage's openshift module registers only its own.
DEFINITION = OAuthProviderDefinition(factory=openshift.create, resolvers=openshift.RESOLVERS)


def conformance_config(fake: FakeIdP) -> dict[str, Any]:
    return {
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "authorizationUrl": f"{OAUTH_SERVER}/oauth/authorize",
        "tokenUrl": f"{OAUTH_SERVER}/oauth/token",
        "openshiftApiServerUrl": API_SERVER,
    }


MakeOpenShift = Callable[..., OpenShiftAuthenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeOpenShift:
    return FakeOpenShift(fake)


@pytest.fixture
async def make_openshift(
    fake: FakeIdP, service: FakeOpenShift, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeOpenShift]:
    created: list[OpenShiftAuthenticator] = []

    def make(**config: Any) -> OpenShiftAuthenticator:
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = openshift.create(
            {**conformance_config(fake), **config}, PATH, deps
        ).authenticator
        assert isinstance(authenticator, OpenShiftAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _sign_in(auth: OpenShiftAuthenticator, fake: FakeIdP) -> Any:
    return await sign_in(auth, fake, provider="openshift", scope=SCOPE)


def test_access_token_object_name() -> None:
    # SHA-256("abc") is FIPS 180-2's test vector; the prefix is not hashed.
    expected = "sha256~ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    assert access_token_object_name("sha256~abc") == expected
    assert access_token_object_name("abc") == expected


async def test_defaults(make_openshift: MakeOpenShift, fake: FakeIdP) -> None:
    auth = make_openshift()
    assert (auth.required_scopes, auth.persist_scopes) == (("user:full",), False)
    started = await auth.start(
        StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert origin_and_path(started.url) == f"{OAUTH_SERVER}/oauth/authorize"
    # passport-oauth2 drops Backstage's accessType/prompt: nothing beyond the standard.
    assert query_of(started.url) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tokenUrl": "oauth/token"}, "tokenUrl"),
        ({"openshiftApiServerUrl": None}, "openshiftApiServerUrl"),
        ({"authorizationUrl": None}, "authorizationUrl"),
    ],
)
def test_invalid_config(config: dict[str, Any], message: str) -> None:
    raw = {**conformance_config(FakeIdP()), **config}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError, match=f"{PATH}.{message}"):
        openshift.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))


async def test_code_exchange_keeps_the_access_token_as_refresh_token(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift
) -> None:
    result = await _sign_in(make_openshift(), fake)

    token_call = fake.last_request_to("token")
    assert token_call.form["client_secret"] == fake.client_secret
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    assert result.session.access_token.startswith("sha256~")
    assert result.session.refresh_token == result.session.access_token
    assert service.requests_to("/apis/user.openshift.io/v1/users/~")[-1].bearer == (
        result.session.access_token
    )
    # The display name is the user *name* (metadata.name), not fullName.
    assert result.profile == ProfileInfo(display_name="jdoe")
    assert result.sign_in_facts == {"username": "jdoe"}


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("5xx", UpstreamError, "^Failed to fetch user profile, HTTP error! Status: 503"),
        ("timeout", UpstreamError, "^Failed to fetch user profile"),
        ("garbage", UpstreamError, "^Failed to fetch user profile"),
        (403, UpstreamError, "^Failed to fetch user profile, HTTP error! Status: 403"),
        (401, AuthenticationError, "^Invalid access token$"),
    ],
)
async def test_failing_profile(
    make_openshift: MakeOpenShift,
    fake: FakeIdP,
    service: FakeOpenShift,
    mode: str | int,
    error: type[BackstageError],
    message: str,
) -> None:
    service.fail("user", mode)
    with pytest.raises(error, match=message):
        await _sign_in(make_openshift(), fake)


async def test_profile_without_a_name(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift
) -> None:
    service.user["metadata"] = {}
    with pytest.raises(UpstreamError, match="the user has no metadata.name"):
        await _sign_in(make_openshift(), fake)


async def test_access_denied(make_openshift: MakeOpenShift) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, nope$"):
        await make_openshift().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(
    make_openshift: MakeOpenShift, fake: FakeIdP, mode: str
) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_openshift(), fake)


# -- refresh: a profile fetch with the access token --------------------------------------


async def test_refresh_is_a_profile_fetch(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift
) -> None:
    auth = make_openshift()
    signed_in = await _sign_in(auth, fake)
    token = signed_in.session.access_token
    token_calls = len(fake.requests_to("token"))

    refreshed = await auth.refresh(RefreshInput(refresh_token=token, scope=SCOPE))

    assert len(fake.requests_to("token")) == token_calls  # no refresh grant
    assert refreshed.session.access_token == refreshed.session.refresh_token == token
    assert (refreshed.session.token_type, refreshed.session.scope) == ("bearer", SCOPE)
    assert refreshed.session.expires_in_seconds is None
    assert refreshed.profile == ProfileInfo(display_name="jdoe")


async def test_refresh_with_an_invalid_token(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift
) -> None:
    auth = make_openshift()
    token = (await _sign_in(auth, fake)).session.access_token
    service.revoke(token)
    with pytest.raises(AuthenticationError, match="^Invalid access token$"):
        await auth.refresh(RefreshInput(refresh_token=token, scope=SCOPE))


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_refresh_during_an_outage(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift, mode: str
) -> None:
    auth = make_openshift()
    token = (await _sign_in(auth, fake)).session.access_token
    service.fail("user", mode)
    with pytest.raises(UpstreamError):
        await auth.refresh(RefreshInput(refresh_token=token, scope=SCOPE))


# -- logout: delete the OAuthAccessToken -------------------------------------------------


async def test_logout_deletes_the_oauth_access_token(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift
) -> None:
    auth = make_openshift()
    token = (await _sign_in(auth, fake)).session.access_token

    assert await auth.logout(LogoutInput(refresh_token=token)) == LogoutResult()

    delete = service.requests[-1]
    assert delete.method == "DELETE"
    assert delete.path == TOKENS_PREFIX + access_token_object_name(token)
    assert delete.bearer == token
    assert service.deleted == [access_token_object_name(token)]
    with pytest.raises(AuthenticationError, match="^Invalid access token$"):
        await auth.refresh(RefreshInput(refresh_token=token, scope=SCOPE))


@pytest.mark.parametrize("mode", [401, 404, 403, "5xx", "timeout", "network"])
async def test_logout_never_fails(
    make_openshift: MakeOpenShift, fake: FakeIdP, service: FakeOpenShift, mode: str | int
) -> None:
    auth = make_openshift()
    token = (await _sign_in(auth, fake)).session.access_token
    service.fail("delete_token", mode)
    # The session cookies are cleared by the handler whatever OpenShift answers.
    assert await auth.logout(LogoutInput(refresh_token=token)) == LogoutResult()


async def test_logout_without_a_session(
    make_openshift: MakeOpenShift, service: FakeOpenShift
) -> None:
    assert await make_openshift().logout(LogoutInput(refresh_token=None)) == LogoutResult()
    assert service.requests == []


# -- sign-in resolvers -----------------------------------------------------------------


def _resolver(name: str, **options: Any) -> Any:
    return build_sign_in_resolver(
        [{"resolver": name, **options}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )


async def test_display_name_resolver(make_openshift: MakeOpenShift, fake: FakeIdP) -> None:
    result = await _sign_in(make_openshift(), fake)
    info = SignInInfo("openshift", result.profile, result.sign_in_facts)
    resolve = _resolver("displayNameMatchingUserEntityName")
    users = [CatalogUser(ref="user:default/jdoe")]
    assert (await resolve(info, resolver_context(users))).user_entity_ref == "user:default/jdoe"
    with pytest.raises(BackstageError, match="^Failed to sign-in, unable to resolve"):
        await resolve(info, resolver_context())
    dangerous = _resolver(
        "displayNameMatchingUserEntityName", dangerouslyAllowSignInWithoutUserInCatalog=True
    )
    assert (await dangerous(info, resolver_context())).user_entity_ref == "user:default/jdoe"
    with pytest.raises(
        BackstageError, match="^OpenShift user profile does not contain a displayName"
    ):
        await resolve(SignInInfo("openshift", ProfileInfo()), resolver_context(users))


def test_only_its_own_resolver_is_offered() -> None:
    assert set(DEFINITION.resolvers) == {"displayNameMatchingUserEntityName"}


# -- end to end: the refresh cookie holds the access token ---------------------------------


@pytest.fixture
def client(fake: FakeIdP, service: FakeOpenShift, clock: FakeClock) -> Iterator[JarlessClient]:
    env = conformance_config(fake)
    resolver = {"resolver": "displayNameMatchingUserEntityName"}
    env["signIn"] = {"resolvers": [resolver | {"dangerouslyAllowSignInWithoutUserInCatalog": True}]}
    transport = httpx2.MockTransport(service)
    with app_client("openshift", DEFINITION, env, transport=transport, clock=clock) as client:
        yield client


def test_sign_in_refresh_and_logout_through_the_handlers(
    client: JarlessClient, fake: FakeIdP, service: FakeOpenShift, clock: FakeClock
) -> None:
    result, jar = browser_sign_in(client, fake, "openshift")
    token = result["payload"]["providerInfo"]["accessToken"]
    assert result["payload"]["profile"] == {"displayName": "jdoe"}
    assert result["payload"]["backstageIdentity"]["identity"]["userEntityRef"] == (
        "user:default/jdoe"
    )

    refreshed = client.get(
        "/api/auth/openshift/refresh?env=development", headers={**XRW, **cookie_header(jar)}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["providerInfo"] == {"accessToken": token, "scope": SCOPE}
    # The "refresh token" did not change, so no new cookie is written.
    assert not [c for c in set_cookies(refreshed) if c.name.startswith("openshift-refresh")]

    logout = client.post(
        "/api/auth/openshift/logout?env=development", headers={**XRW, **cookie_header(jar)}
    )
    assert logout.status_code == 200
    assert service.deleted == [access_token_object_name(token)]
    cleared = [c for c in set_cookies(logout) if c.name == "openshift-refresh-token"]
    assert cleared and cleared[0].value == ""

    clock.advance(60)  # past the grace window in which a refresh result is reused
    after = client.get(
        "/api/auth/openshift/refresh?env=development", headers={**XRW, **cookie_header(jar)}
    )
    assert after.status_code == 401
    # Refused here, before the cluster is asked (which would refuse the deleted token).
    assert after.json()["error"]["message"] == (
        "Refresh failed; caused by AuthenticationError: Session ended"
    )


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["openshift"]
    assert registered == DEFINITION
