"""The ``bitbucket`` provider against a fake Bitbucket Cloud.

Backstage: ``plugins/auth-backend-module-bitbucket-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, NotFoundError
from app.identity.catalog import CatalogUser
from app.identity.resolvers import (
    COMMON_RESOLVERS,
    ResolverConfigError,
    build_sign_in_resolver,
)
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import bitbucket
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.bitbucket import BitbucketAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_bitbucket import AVATAR, UUID, FakeBitbucket
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.provider_kit import (
    app_client,
    browser_sign_in,
    resolver_context,
)
from tests.handlers.helpers import XRW, cookie_header
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.bitbucket.development"
CALLBACK = callback("bitbucket")
SCOPE = "account team"

DEFINITION = OAuthProviderDefinition(
    factory=bitbucket.create,
    resolvers={**bitbucket.RESOLVERS, **COMMON_RESOLVERS},
)


MakeBitbucket = Callable[..., BitbucketAuthenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeBitbucket:
    return FakeBitbucket(fake)


@pytest.fixture
async def make_bitbucket(
    fake: FakeIdP, service: FakeBitbucket, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeBitbucket]:
    created: list[BitbucketAuthenticator] = []

    def make(**config: Any) -> BitbucketAuthenticator:
        raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret, **config}
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = bitbucket.create(raw, PATH, deps).authenticator
        assert isinstance(authenticator, BitbucketAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


def bitbucket_start(scope: str) -> StartInput:
    return StartInput(state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS)


async def _sign_in(auth: BitbucketAuthenticator, fake: FakeIdP) -> Any:
    return await sign_in(auth, fake, provider="bitbucket", scope=SCOPE)


# -- /start ----------------------------------------------------------------------------


async def test_defaults(make_bitbucket: MakeBitbucket, fake: FakeIdP) -> None:
    auth = make_bitbucket()
    assert auth.persist_scopes is True
    assert auth.required_scopes == ("account",)
    started = await auth.start(bitbucket_start(scope=SCOPE))
    assert origin_and_path(started.url) == "https://bitbucket.org/site/oauth2/authorize"
    assert query_of(started.url) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }
    assert auth.endpoints.token_url == "https://bitbucket.org/site/oauth2/access_token"
    assert auth.endpoints.userinfo_url == "https://api.bitbucket.org/2.0/user"


async def test_overrides(make_bitbucket: MakeBitbucket) -> None:
    auth = make_bitbucket(
        additionalScopes="pullrequest repository",
        **{"x-endpoints": {"authorizationUrl": "https://proxy.example.test/authorize"}},
    )
    assert auth.additional_scopes == ("pullrequest", "repository")
    started = await auth.start(bitbucket_start(scope=SCOPE))
    assert origin_and_path(started.url) == "https://proxy.example.test/authorize"


# -- the callback ----------------------------------------------------------------------


async def test_code_exchange_uses_basic_auth(make_bitbucket: MakeBitbucket, fake: FakeIdP) -> None:
    result = await _sign_in(make_bitbucket(), fake)

    token_call = fake.last_request_to("token")
    assert token_call.basic_auth == (fake.client_id, fake.client_secret)
    assert token_call.form["grant_type"] == "authorization_code"
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    assert result.session.refresh_token
    # Bitbucket answers "scopes"; the granted scope comes from the state (persisted).
    assert result.session.scope == ""


async def test_profile(make_bitbucket: MakeBitbucket, fake: FakeIdP) -> None:
    result = await _sign_in(make_bitbucket(), fake)

    assert result.profile == ProfileInfo(
        email="jane.doe@example.com", display_name="Jane Doe", picture=AVATAR
    )
    assert result.sign_in_facts == {"user_id": UUID, "username": "jdoe"}


async def test_profile_fallbacks(
    make_bitbucket: MakeBitbucket, fake: FakeIdP, service: FakeBitbucket
) -> None:
    del service.user["display_name"]
    del service.user["links"]
    service.emails = [
        {"is_primary": True, "is_confirmed": False, "email": "unconfirmed@example.com"},
        {"is_primary": False, "is_confirmed": True, "email": "secondary@example.com"},
    ]
    result = await _sign_in(make_bitbucket(), fake)
    # display name: display_name, else username, else uuid; only a confirmed primary email.
    assert result.profile == ProfileInfo(display_name="jdoe")


@pytest.mark.parametrize("mode", ["5xx", "timeout", 403, "garbage"])
async def test_emails_are_best_effort(
    make_bitbucket: MakeBitbucket, fake: FakeIdP, service: FakeBitbucket, mode: str | int
) -> None:
    service.fail("emails", mode)
    result = await _sign_in(make_bitbucket(), fake)
    assert result.profile == ProfileInfo(display_name="Jane Doe", picture=AVATAR)


@pytest.mark.parametrize("mode", ["5xx", "timeout", 401, "garbage"])
async def test_failing_profile(
    make_bitbucket: MakeBitbucket, fake: FakeIdP, service: FakeBitbucket, mode: str | int
) -> None:
    service.fail("user", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make_bitbucket(), fake)


async def test_access_denied(make_bitbucket: MakeBitbucket) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, nope$"):
        await make_bitbucket().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(
    make_bitbucket: MakeBitbucket, fake: FakeIdP, mode: str
) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_bitbucket(), fake)


# -- refresh and logout ----------------------------------------------------------------


async def test_refresh(make_bitbucket: MakeBitbucket, fake: FakeIdP) -> None:
    auth = make_bitbucket()
    signed_in = await _sign_in(auth, fake)
    assert signed_in.session.refresh_token
    refreshed = await auth.refresh(
        RefreshInput(refresh_token=signed_in.session.refresh_token, scope=SCOPE)
    )
    form = fake.last_request_to("token").form
    assert form["grant_type"] == "refresh_token"
    assert form["scope"] == SCOPE  # passport sends the scope on refresh
    assert refreshed.session.access_token != signed_in.session.access_token
    assert refreshed.session.scope == SCOPE
    assert refreshed.profile.display_name == "Jane Doe"


async def test_refresh_invalid_grant(make_bitbucket: MakeBitbucket) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await make_bitbucket().refresh(RefreshInput(refresh_token="rt-unknown", scope=SCOPE))


async def test_logout_is_a_no_op(make_bitbucket: MakeBitbucket, service: FakeBitbucket) -> None:
    calls = len(service.requests)
    assert await make_bitbucket().logout(LogoutInput(refresh_token="rt")) == LogoutResult()
    assert len(service.requests) == calls


def test_unknown_keys_are_ignored() -> None:
    raw = {"clientId": "id", "clientSecret": "secret", "audience": "https://bitbucket.org"}
    bitbucket.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))
    with pytest.raises(ConfigError, match=f"{PATH}.clientSecret"):
        bitbucket.create(
            {"clientId": "id"}, PATH, ProviderDeps(clock=FakeClock(), development=True)
        )


# -- sign-in resolvers -----------------------------------------------------------------

JANE = CatalogUser(
    ref="user:default/jane",
    email="jane.doe@example.com",
    annotations={"bitbucket.org/user-id": UUID, "bitbucket.org/username": "jdoe"},
)


def _resolver(name: str, **options: Any) -> Any:
    return build_sign_in_resolver(
        [{"resolver": name, **options}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )


@pytest.mark.parametrize(
    "name",
    [
        "userIdMatchingUserEntityAnnotation",
        "usernameMatchingUserEntityAnnotation",
        "emailMatchingUserEntityProfileEmail",
        "emailLocalPartMatchingUserEntityName",
    ],
)
async def test_resolvers(make_bitbucket: MakeBitbucket, fake: FakeIdP, name: str) -> None:
    result = await _sign_in(make_bitbucket(), fake)
    info = SignInInfo("bitbucket", result.profile, result.sign_in_facts)
    users = [JANE, CatalogUser(ref="user:default/jane.doe")]
    identity = await _resolver(name)(info, resolver_context(users))
    expected = "user:default/jane.doe" if name.startswith("emailLocalPart") else JANE.ref
    assert identity.user_entity_ref == expected


@pytest.mark.parametrize(
    ("name", "fact", "message"),
    [
        ("userIdMatchingUserEntityAnnotation", "user_id", "does not contain an ID"),
        ("usernameMatchingUserEntityAnnotation", "username", "does not contain a Username"),
    ],
)
async def test_resolvers_need_their_fact(name: str, fact: str, message: str) -> None:
    facts = {"user_id": UUID, "username": "jdoe"}
    del facts[fact]
    info = SignInInfo("bitbucket", ProfileInfo(), facts)
    with pytest.raises(BackstageError, match=f"^Bitbucket user profile {message}"):
        await bitbucket.RESOLVERS[name]({})(info, resolver_context([JANE]))


async def test_resolver_not_found_and_no_options() -> None:
    info = SignInInfo("bitbucket", ProfileInfo(), {"user_id": "{other}", "username": "x"})
    resolve = bitbucket.RESOLVERS["userIdMatchingUserEntityAnnotation"]({})
    with pytest.raises(NotFoundError):
        await resolve(info, resolver_context([JANE]))
    # Backstage's Bitbucket resolvers have no options schema: any option is refused.
    with pytest.raises(ResolverConfigError, match="unknown option"):
        _resolver(
            "userIdMatchingUserEntityAnnotation", dangerouslyAllowSignInWithoutUserInCatalog=True
        )


# -- end to end: persisted scopes --------------------------------------------------------


def test_granted_scopes_persist_through_the_handlers(fake: FakeIdP, clock: FakeClock) -> None:
    env = {"clientId": fake.client_id, "clientSecret": fake.client_secret}
    transport = httpx2.MockTransport(FakeBitbucket(fake))
    with app_client("bitbucket", DEFINITION, env, transport=transport, clock=clock) as client:
        result, jar = browser_sign_in(client, fake, "bitbucket", scope="team")
        assert fake.last_authorize["scope"] == "team account"
        assert result["payload"]["providerInfo"]["scope"] == "team account"
        assert result["payload"]["profile"]["email"] == "jane.doe@example.com"
        assert unquote(jar["bitbucket-granted-scope"]) == "team account"

        refreshed = client.get(
            "/api/auth/bitbucket/refresh",
            params={"env": "development", "scope": "pullrequest"},
            headers={**XRW, **cookie_header(jar)},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["providerInfo"]["scope"] == "pullrequest team account"
        assert fake.last_request_to("token").form["scope"] == "pullrequest team account"


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["bitbucket"]
    assert registered == DEFINITION
