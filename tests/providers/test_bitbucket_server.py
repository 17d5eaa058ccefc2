"""The ``bitbucketServer`` provider against a fake Bitbucket Data Center.

Backstage: ``plugins/auth-backend-module-bitbucket-server-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError
from app.identity.catalog import CatalogUser
from app.identity.resolvers import COMMON_RESOLVERS, build_sign_in_resolver
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import bitbucket_server
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.bitbucket_server import BitbucketServerAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_bitbucket_server import HOST, USERS_PREFIX, WHOAMI_PATH, FakeBitbucketServer
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.provider_kit import resolver_context
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.bitbucketServer.development"
CALLBACK = callback("bitbucketServer")
SCOPE = "PUBLIC_REPOS"

# Backstage spreads the common resolvers after its own emailMatchingUserEntityProfileEmail,
# so the common resolvers are exactly what this provider offers.
DEFINITION = OAuthProviderDefinition(factory=bitbucket_server.create, resolvers=COMMON_RESOLVERS)


MakeServer = Callable[..., BitbucketServerAuthenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeBitbucketServer:
    return FakeBitbucketServer(fake)


@pytest.fixture
async def make_server(
    fake: FakeIdP, service: FakeBitbucketServer, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeServer]:
    created: list[BitbucketServerAuthenticator] = []

    def make(**config: Any) -> BitbucketServerAuthenticator:
        raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret, "host": HOST}
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = bitbucket_server.create({**raw, **config}, PATH, deps).authenticator
        assert isinstance(authenticator, BitbucketServerAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _sign_in(auth: BitbucketServerAuthenticator, fake: FakeIdP) -> Any:
    return await sign_in(auth, fake, provider="bitbucketServer", scope=SCOPE)


async def test_defaults(make_server: MakeServer, fake: FakeIdP) -> None:
    auth = make_server()
    assert (auth.persist_scopes, auth.required_scopes) == (False, ())
    started = await auth.start(
        StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert origin_and_path(started.url) == f"https://{HOST}/rest/oauth2/latest/authorize"
    assert query_of(started.url) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }
    assert auth.endpoints.token_url == f"https://{HOST}/rest/oauth2/latest/token"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("git.example.com:7990", "https://git.example.com:7990"),
        ("example.com/bitbucket/", "https://example.com/bitbucket"),
    ],
)
def test_host_may_have_a_port_and_a_context_path(host: str, base: str) -> None:
    raw = {"clientId": "id", "clientSecret": "secret", "host": host}
    build = bitbucket_server.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))
    assert build.authenticator.endpoints.authorization_url == (  # type: ignore[attr-defined]
        f"{base}/rest/oauth2/latest/authorize"
    )


@pytest.mark.parametrize("host", ["https://git.example.com", "", "git example.com"])
def test_host_must_not_be_a_url(host: str) -> None:
    raw = {"clientId": "id", "clientSecret": "secret", "host": host}
    with pytest.raises(ConfigError, match=f"{PATH}.host: must be a host name"):
        bitbucket_server.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))


async def test_code_exchange_and_profile(
    make_server: MakeServer, fake: FakeIdP, service: FakeBitbucketServer
) -> None:
    result = await _sign_in(make_server(), fake)

    token_call = fake.last_request_to("token")
    assert (token_call.form["client_id"], token_call.basic_auth) == (fake.client_id, None)
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    user_call = service.requests_to(f"{USERS_PREFIX}jdoe")[-1]
    assert user_call.query == {"avatarSize": "256"}
    assert user_call.bearer == result.session.access_token
    assert result.profile == ProfileInfo(
        email="jane.doe@example.com",
        display_name="Jane Doe",
        picture=f"https://{HOST}/users/jdoe/avatar.png?s=256&v=1700000000000",
    )
    assert result.sign_in_facts == {"user_id": "101", "username": "jdoe"}


async def test_profile_fallbacks(
    make_server: MakeServer, fake: FakeIdP, service: FakeBitbucketServer
) -> None:
    del service.user["displayName"]
    del service.user["emailAddress"]
    service.avatar_url = "https://secure.gravatar.test/avatar/abc.png?s=256"
    result = await _sign_in(make_server(), fake)
    # An avatar served elsewhere stays absolute.
    assert result.profile == ProfileInfo(
        display_name="jdoe", picture="https://secure.gravatar.test/avatar/abc.png?s=256"
    )


async def test_whoami_without_a_username(
    make_server: MakeServer, fake: FakeIdP, service: FakeBitbucketServer
) -> None:
    service.authorized = lambda request: request.path != WHOAMI_PATH  # type: ignore[method-assign]
    with pytest.raises(BackstageError) as info:
        await _sign_in(make_server(), fake)
    assert info.value.message == "Failed to retrieve the username of the logged in user"


@pytest.mark.parametrize(
    ("route", "mode", "error", "message"),
    [
        ("whoami", "5xx", UpstreamError, "^Failed to retrieve the username"),
        ("whoami", "timeout", UpstreamError, "^Failed to fetch user profile"),
        ("user", "5xx", UpstreamError, "^Failed to retrieve the user 'jdoe', status 503"),
        ("user", 404, BackstageError, "^Failed to retrieve the user 'jdoe', status 404"),
        ("user", "garbage", UpstreamError, "^Failed to fetch user profile"),
    ],
)
async def test_failing_profile(
    make_server: MakeServer,
    fake: FakeIdP,
    service: FakeBitbucketServer,
    route: str,
    mode: str | int,
    error: type[BackstageError],
    message: str,
) -> None:
    service.fail(route, mode)
    with pytest.raises(error, match=message):
        await _sign_in(make_server(), fake)


async def test_access_denied(make_server: MakeServer) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, nope$"):
        await make_server().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(make_server: MakeServer, fake: FakeIdP, mode: str) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_server(), fake)


async def test_refresh_fetches_the_profile_again(
    make_server: MakeServer, fake: FakeIdP, service: FakeBitbucketServer
) -> None:
    auth = make_server()
    signed_in = await _sign_in(auth, fake)
    assert signed_in.session.refresh_token
    service.user["displayName"] = "Jane Renamed"
    refreshed = await auth.refresh(
        RefreshInput(refresh_token=signed_in.session.refresh_token, scope=SCOPE)
    )
    assert fake.last_request_to("token").form["grant_type"] == "refresh_token"
    assert refreshed.profile.display_name == "Jane Renamed"
    assert service.requests_to(WHOAMI_PATH)[-1].bearer == refreshed.session.access_token


async def test_refresh_invalid_grant(make_server: MakeServer) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await make_server().refresh(RefreshInput(refresh_token="rt-unknown", scope=SCOPE))


async def test_logout_is_a_no_op(make_server: MakeServer) -> None:
    assert await make_server().logout(LogoutInput(refresh_token="rt")) == LogoutResult()


async def test_resolvers(make_server: MakeServer, fake: FakeIdP) -> None:
    result = await _sign_in(make_server(), fake)
    info = SignInInfo("bitbucketServer", result.profile, result.sign_in_facts)
    users = [CatalogUser(ref="user:default/jane", email="jane.doe@example.com")]
    resolver = build_sign_in_resolver(
        [{"resolver": "emailMatchingUserEntityProfileEmail"}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )
    identity = await resolver(info, resolver_context(users))
    assert identity.user_entity_ref == "user:default/jane"


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["bitbucketServer"]
    assert registered == DEFINITION
