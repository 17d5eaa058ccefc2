"""The ``onelogin`` provider against a fake OneLogin OIDC account.

Backstage: ``plugins/auth-backend-module-onelogin-provider/src/authenticator.ts``
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
from app.oauth.scopes import join_scope
from app.providers import onelogin
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.onelogin import OneLoginAuthenticator
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP, s256
from tests.fakes.fake_onelogin import ISSUER, FakeOneLogin
from tests.fakes.provider_kit import resolver_context
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of, sign_in

pytestmark = pytest.mark.anyio

PATH = "auth.providers.onelogin.development"
CALLBACK = callback("onelogin")

DEFINITION = OAuthProviderDefinition(
    factory=onelogin.create,
    resolvers={**onelogin.RESOLVERS, **COMMON_RESOLVERS},
)


MakeOneLogin = Callable[..., OneLoginAuthenticator]


@pytest.fixture
def service(fake: FakeIdP) -> FakeOneLogin:
    return FakeOneLogin(fake)


@pytest.fixture
async def make_onelogin(
    fake: FakeIdP, service: FakeOneLogin, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeOneLogin]:
    created: list[OneLoginAuthenticator] = []

    def make(**config: Any) -> OneLoginAuthenticator:
        raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret, "issuer": ISSUER}
        deps = ProviderDeps(clock=clock, development=True, transport=httpx2.MockTransport(service))
        authenticator = onelogin.create({**raw, **config}, PATH, deps).authenticator
        assert isinstance(authenticator, OneLoginAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


def _scope(auth: OneLoginAuthenticator, requested: str = "") -> str:
    """The scope the flow handlers compute (Backstage's CookieScopeManager)."""
    return join_scope(
        auth.transform_scopes(requested.split(), [], auth.required_scopes, auth.additional_scopes)
    )


async def _sign_in(auth: OneLoginAuthenticator, fake: FakeIdP) -> Any:
    return await sign_in(auth, fake, provider="onelogin", scope=_scope(auth, "email profile"))


async def test_defaults(make_onelogin: MakeOneLogin, fake: FakeIdP) -> None:
    auth = make_onelogin(additionalScopes="groups")
    scope = _scope(auth, "email profile")
    started = await auth.start(
        StartInput(state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert origin_and_path(started.url) == f"{ISSUER}/auth"
    # Whatever was requested or configured, the scope is "openid".
    assert query_of(started.url) == {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }
    assert auth.endpoints.token_url == f"{ISSUER}/token"
    assert auth.endpoints.userinfo_url == f"{ISSUER}/me"


def test_issuer_trailing_slash_and_validation() -> None:
    deps = ProviderDeps(clock=FakeClock(), development=True)
    raw = {"clientId": "id", "clientSecret": "secret", "issuer": ISSUER + "/"}
    build = onelogin.create(raw, PATH, deps)
    assert build.authenticator.endpoints.authorization_url == f"{ISSUER}/auth"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=f"{PATH}.issuer"):
        onelogin.create({**raw, "issuer": "example.onelogin.com"}, PATH, deps)
    with pytest.raises(ConfigError, match=f"{PATH}.issuer"):
        onelogin.create({"clientId": "id", "clientSecret": "secret"}, PATH, deps)


async def test_code_exchange_and_profile(
    make_onelogin: MakeOneLogin, fake: FakeIdP, service: FakeOneLogin
) -> None:
    fake.id_token_claims["picture"] = "https://example.onelogin.test/jane.png"
    result = await _sign_in(make_onelogin(), fake)

    token_call = fake.last_request_to("token")
    assert token_call.form["client_id"] == fake.client_id
    assert token_call.form["code_verifier"] == SECRETS.code_verifier
    assert result.session.scope == "openid"
    assert result.session.id_token
    assert service.requests_to("/oidc/2/me")[-1].bearer == result.session.access_token
    # /me has no picture: the ID token fills that gap.
    assert result.profile == ProfileInfo(
        email="jane.doe@example.com",
        display_name="Jane Doe",
        picture="https://example.onelogin.test/jane.png",
    )
    assert result.sign_in_facts == {"user_id": fake.subject, "username": "jane.doe"}


async def test_display_name_fallbacks(
    make_onelogin: MakeOneLogin, fake: FakeIdP, service: FakeOneLogin
) -> None:
    fake.id_token_claims["name"] = "From Id Token"
    del service.me["name"]
    result = await _sign_in(make_onelogin(), fake)
    # passport's displayName ?? username ?? id, before the ID token.
    assert result.profile.display_name == "jane.doe"


@pytest.mark.parametrize("mode", ["5xx", "timeout", 401, "garbage"])
async def test_failing_profile(
    make_onelogin: MakeOneLogin, fake: FakeIdP, service: FakeOneLogin, mode: str | int
) -> None:
    service.fail("me", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make_onelogin(), fake)


async def test_access_denied(make_onelogin: MakeOneLogin) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, nope$"):
        await make_onelogin().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout"])
async def test_token_endpoint_outage(make_onelogin: MakeOneLogin, fake: FakeIdP, mode: str) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_onelogin(), fake)


async def test_refresh_sends_openid(make_onelogin: MakeOneLogin, fake: FakeIdP) -> None:
    auth = make_onelogin(additionalScopes="groups")
    signed_in = await _sign_in(auth, fake)
    assert signed_in.session.refresh_token
    refreshed = await auth.refresh(
        RefreshInput(refresh_token=signed_in.session.refresh_token, scope=_scope(auth, "email"))
    )
    assert fake.last_request_to("token").form["scope"] == "openid"
    assert refreshed.profile.display_name == "Jane Doe"


async def test_refresh_invalid_grant(make_onelogin: MakeOneLogin) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await make_onelogin().refresh(RefreshInput(refresh_token="rt-unknown", scope="openid"))


async def test_logout_is_a_no_op(make_onelogin: MakeOneLogin) -> None:
    assert await make_onelogin().logout(LogoutInput(refresh_token="rt")) == LogoutResult()


def _resolver(name: str, **options: Any) -> Any:
    return build_sign_in_resolver(
        [{"resolver": name, **options}],
        available=DEFINITION.resolvers,
        config_path=f"{PATH}.signIn.resolvers",
    )


async def test_username_resolver(make_onelogin: MakeOneLogin, fake: FakeIdP) -> None:
    result = await _sign_in(make_onelogin(), fake)
    info = SignInInfo("onelogin", result.profile, result.sign_in_facts)
    users = [CatalogUser(ref="user:default/jane.doe")]
    resolve = _resolver("usernameMatchingUserEntityName")
    assert (await resolve(info, resolver_context(users))).user_entity_ref == "user:default/jane.doe"
    with pytest.raises(BackstageError, match="^OneLogin user profile does not contain a username"):
        await resolve(SignInInfo("onelogin", result.profile, {}), resolver_context(users))


async def test_common_resolver(make_onelogin: MakeOneLogin, fake: FakeIdP) -> None:
    result = await _sign_in(make_onelogin(), fake)
    info = SignInInfo("onelogin", result.profile, result.sign_in_facts)
    users = [CatalogUser(ref="user:default/jane", email="jane.doe@example.com")]
    resolve = _resolver("emailMatchingUserEntityProfileEmail")
    assert (await resolve(info, resolver_context(users))).user_entity_ref == "user:default/jane"


def test_the_registry_entry_is_the_expected_one() -> None:
    registered = REGISTRY["onelogin"]
    assert registered == DEFINITION
