"""The ``atlassian`` provider against a fake Atlassian Cloud.

Backstage: ``plugins/auth-backend-module-atlassian-provider/src/authenticator.ts``
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
from app.providers import atlassian
from app.providers.atlassian import AtlassianAuthenticator
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_atlassian import ACCOUNT_ID, FakeAtlassian
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.provider_kit import resolver_context
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.atlassian.development"
CALLBACK = callback("atlassian")
REQUIRED = "offline_access read:me read:jira-work read:jira-user"

DEFINITION = OAuthProviderDefinition(
    factory=atlassian.create,
    resolvers={**atlassian.RESOLVERS, **COMMON_RESOLVERS},
)


MakeAtlassian = Callable[..., AtlassianAuthenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeAtlassian:
    return FakeAtlassian(fake)


@pytest.fixture
async def make_atlassian(
    fake: FakeIdP, service: FakeAtlassian, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeAtlassian]:
    created: list[AtlassianAuthenticator] = []

    def make(**config: Any) -> AtlassianAuthenticator:
        raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret, **config}
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = atlassian.create(raw, PATH, deps).authenticator
        assert isinstance(authenticator, AtlassianAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _sign_in(auth: AtlassianAuthenticator, fake: FakeIdP) -> Any:
    return await sign_in(auth, fake, provider="atlassian", scope=REQUIRED)


async def test_defaults(make_atlassian: MakeAtlassian, fake: FakeIdP) -> None:
    auth = make_atlassian()
    assert " ".join(auth.required_scopes) == REQUIRED
    assert auth.persist_scopes is False
    started = await auth.start(
        StartInput(state=STATE, scope=REQUIRED, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert origin_and_path(started.url) == "https://auth.atlassian.com/authorize"
    assert query_of(started.url) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": REQUIRED,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
        "audience": "api.atlassian.com",
        "prompt": "consent",
    }
    assert auth.endpoints.token_url == "https://auth.atlassian.com/oauth/token"
    assert auth.endpoints.userinfo_url == "https://api.atlassian.com/me"


async def test_additional_scopes(make_atlassian: MakeAtlassian) -> None:
    assert make_atlassian(additionalScopes=["write:jira-work"]).additional_scopes == (
        "write:jira-work",
    )


@pytest.mark.parametrize("key", ["scope", "scopes"])
def test_scope_keys_are_a_startup_error(key: str) -> None:
    raw = {"clientId": "id", "clientSecret": "secret", key: "read:me"}
    with pytest.raises(ConfigError) as info:
        atlassian.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=True))
    assert str(info.value) == (
        f'{PATH}: The atlassian provider no longer supports the "scope" or "scopes" '
        'configuration options. Please use the "additionalScopes" option instead.'
    )


async def test_code_exchange_and_profile(make_atlassian: MakeAtlassian, fake: FakeIdP) -> None:
    result = await _sign_in(make_atlassian(), fake)

    token_call = fake.last_request_to("token")
    assert token_call.form["client_secret"] == fake.client_secret
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    assert result.session.scope == REQUIRED
    assert result.session.refresh_token
    assert result.profile == ProfileInfo(
        email="jane.doe@example.com",
        display_name="Jane Doe",
        picture=f"https://avatar-management.test/{ACCOUNT_ID}/128",
    )
    # passport-atlassian-oauth2 maps no username, and the editable nickname is not one.
    assert result.sign_in_facts == {"user_id": ACCOUNT_ID}


@pytest.mark.parametrize("mode", ["5xx", "timeout", 401, "garbage"])
async def test_failing_profile(
    make_atlassian: MakeAtlassian, fake: FakeIdP, service: FakeAtlassian, mode: str | int
) -> None:
    service.fail("me", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make_atlassian(), fake)


async def test_access_denied(make_atlassian: MakeAtlassian) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, nope$"):
        await make_atlassian().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(
    make_atlassian: MakeAtlassian, fake: FakeIdP, mode: str
) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_atlassian(), fake)


async def test_refresh_with_rotation(make_atlassian: MakeAtlassian, fake: FakeIdP) -> None:
    fake.rotate_refresh_tokens = True  # Atlassian rotates refresh tokens
    auth = make_atlassian()
    signed_in = await _sign_in(auth, fake)
    old = signed_in.session.refresh_token
    assert old
    refreshed = await auth.refresh(RefreshInput(refresh_token=old, scope=REQUIRED))
    assert refreshed.session.refresh_token not in (None, old)
    assert refreshed.profile.display_name == "Jane Doe"
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await auth.refresh(RefreshInput(refresh_token=old, scope=REQUIRED))


async def test_logout_is_a_no_op(make_atlassian: MakeAtlassian) -> None:
    assert await make_atlassian().logout(LogoutInput(refresh_token="rt")) == LogoutResult()


# -- sign-in resolvers -----------------------------------------------------------------


def _resolver(name: str, **options: Any) -> Any:
    return build_sign_in_resolver(
        [{"resolver": name, **options}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )


async def test_username_resolver_fails_as_in_backstage(
    make_atlassian: MakeAtlassian, fake: FakeIdP
) -> None:
    result = await _sign_in(make_atlassian(), fake)
    info = SignInInfo("atlassian", result.profile, result.sign_in_facts)
    with pytest.raises(BackstageError) as caught:
        await _resolver("usernameMatchingUserEntityName")(info, resolver_context())
    assert caught.value.message == "Atlassian user profile does not contain a username"


async def test_username_resolver_with_a_username() -> None:
    # The resolver itself, for a profile that does carry a username.
    info = SignInInfo("atlassian", ProfileInfo(), {"username": "jdoe"})
    users = [CatalogUser(ref="user:default/jdoe")]
    identity = await _resolver("usernameMatchingUserEntityName")(info, resolver_context(users))
    assert identity.user_entity_ref == "user:default/jdoe"
    dangerous = _resolver(
        "usernameMatchingUserEntityName", dangerouslyAllowSignInWithoutUserInCatalog=True
    )
    assert (await dangerous(info, resolver_context())).user_entity_ref == "user:default/jdoe"


async def test_common_resolver(make_atlassian: MakeAtlassian, fake: FakeIdP) -> None:
    result = await _sign_in(make_atlassian(), fake)
    info = SignInInfo("atlassian", result.profile, result.sign_in_facts)
    users = [CatalogUser(ref="user:default/jane", email="jane.doe@example.com")]
    resolve = _resolver("emailMatchingUserEntityProfileEmail")
    assert (await resolve(info, resolver_context(users))).user_entity_ref == "user:default/jane"


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["atlassian"]
    assert registered == DEFINITION
