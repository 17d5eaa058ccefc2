"""The ``okta`` provider against a fake Okta org.

Backstage: ``plugins/auth-backend-module-okta-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, NotFoundError
from app.identity.catalog import CatalogUser
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import okta
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.okta import OktaAuthenticator
from app.providers.resolvers_profile import OKTA_RESOLVERS
from tests.fakes.fake_idp import s256
from tests.fakes.fake_oauth_service import sign_in
from tests.fakes.fake_okta import ORG, SUB, FakeOkta, okta_userinfo
from tests.fakes.resolver_context import resolver_context
from tests.providers.helpers import (
    SECRETS,
    STATE,
    Authenticators,
    callback,
    origin_and_path,
    query_of,
)

pytestmark = pytest.mark.anyio

PATH = "auth.providers.okta.development"
CALLBACK = callback("okta")
SCOPE = "openid email profile offline_access"

Make = Callable[..., OktaAuthenticator]


@pytest.fixture
def fake() -> FakeOkta:
    return FakeOkta()


@pytest.fixture
async def make(fake: FakeOkta, anyio_backend: str) -> AsyncIterator[Make]:
    authenticators = Authenticators(okta.create, PATH, OktaAuthenticator)

    def build(service: FakeOkta = fake, **config: Any) -> OktaAuthenticator:
        return authenticators.build(service, **config)

    yield build
    await authenticators.aclose()


async def _start(auth: OktaAuthenticator) -> str:
    started = await auth.start(
        StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
    )
    return started.url


async def _sign_in(auth: OktaAuthenticator, fake: FakeOkta) -> Any:
    return await sign_in(auth, fake, callback=CALLBACK, scope=SCOPE)


# -- defaults and overrides -----------------------------------------------------------


async def test_defaults_are_okta_com_and_the_org_authorization_server(make: Make) -> None:
    url = await _start(make())

    assert origin_and_path(url) == "https://okta.com/oauth2/v1/authorize"
    assert query_of(url) == {
        "client_id": "backstage-client",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_audience_auth_server_and_idp(make: Make) -> None:
    url = await _start(make(audience=ORG + "/", authServerId="default", idp="0oa62b57p7c8PaGpU0h7"))

    assert origin_and_path(url) == f"{ORG}/oauth2/default/v1/authorize"
    assert query_of(url)["idp"] == "0oa62b57p7c8PaGpU0h7"


async def test_org_authorization_server_without_auth_server_id(make: Make) -> None:
    fake = FakeOkta(auth_server_id=None)
    result = await _sign_in(make(fake, audience=ORG), fake)
    assert fake.last_request_to("token").url == f"{ORG}/oauth2/v1/token"
    assert fake.last_request_to("profile").url == f"{ORG}/oauth2/v1/userinfo"
    assert result.profile.email == "john.doe@example.com"


@pytest.mark.parametrize("audience", ["dev-133337.okta.com", "ftp://okta.com"])
async def test_audience_must_start_with_http(make: Make, audience: str) -> None:
    with pytest.raises(ConfigError, match=rf"{PATH}\.audience"):
        make(audience=audience)


async def test_required_scopes(make: Make) -> None:
    auth = make(additionalScopes=["okta.users.read.self"])
    assert auth.transform_scopes([], [], auth.required_scopes, auth.additional_scopes) == [
        *SCOPE.split(),
        "okta.users.read.self",
    ]


# -- the code exchange, the profile, refresh ----------------------------------------------


async def test_code_exchange_and_profile(make: Make, fake: FakeOkta) -> None:
    result = await _sign_in(make(audience=ORG, authServerId="default"), fake)

    token = fake.last_request_to("token")
    assert token.form["grant_type"] == "authorization_code"
    assert token.form["code_verifier"] == SECRETS.code_verifier
    assert token.form["client_secret"] == fake.client_secret
    assert result.session.refresh_token is not None
    assert result.session.id_token is not None
    # passport-okta-oauth maps no picture: the ID token's fills the gap.
    assert result.profile == ProfileInfo(
        email="john.doe@example.com",
        display_name="John Doe",
        picture="https://example.com/john.png",
    )
    assert result.sign_in_facts["user_id"] == SUB
    assert result.sign_in_facts["username"] == "john.doe@example.com"


async def test_display_name_falls_back_to_preferred_username(make: Make, fake: FakeOkta) -> None:
    fake.userinfo = okta_userinfo(name=None)
    result = await _sign_in(make(audience=ORG, authServerId="default"), fake)
    assert result.profile.display_name == "john.doe@example.com"


async def test_refresh(make: Make, fake: FakeOkta) -> None:
    auth = make(audience=ORG, authServerId="default")
    result = await _sign_in(auth, fake)

    refreshed = await auth.refresh(
        RefreshInput(refresh_token=result.session.refresh_token, scope=SCOPE)
    )
    assert fake.last_request_to("token").form["grant_type"] == "refresh_token"
    assert refreshed.session.refresh_token == result.session.refresh_token
    assert refreshed.profile.display_name == "John Doe"

    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await auth.refresh(RefreshInput(refresh_token="expired", scope=SCOPE))


async def test_no_logout_hook(make: Make, fake: FakeOkta) -> None:
    assert await make().logout(LogoutInput(refresh_token="r")) == LogoutResult()
    assert fake.requests == []


# -- failures ----------------------------------------------------------------------------------


async def test_access_denied(make: Make) -> None:
    with pytest.raises(BackstageError) as info:
        await make().authenticate(
            AuthenticateInput(
                params={
                    "error": "access_denied",
                    "error_description": "User is not assigned to the client application.",
                },
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == (
        "Authentication rejected, User is not assigned to the client application."
    )


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage"])
async def test_token_outage(make: Make, fake: FakeOkta, mode: str) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await _sign_in(make(audience=ORG, authServerId="default"), fake)
    assert info.value.status_code == 503


@pytest.mark.parametrize("mode", ["5xx", "timeout", "401"])
async def test_userinfo_failure(make: Make, fake: FakeOkta, mode: str) -> None:
    fake.fail("profile", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make(audience=ORG, authServerId="default"), fake)


# -- sign-in resolver ----------------------------------------------------------------------------

JOHN = CatalogUser(ref="user:default/john", annotations={"okta.com/email": "john.doe@example.com"})


async def test_email_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolver = OKTA_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    ctx = resolver_context([JOHN])
    info = SignInInfo("okta", ProfileInfo(email="john.doe@example.com"))
    assert (await resolver(info, ctx)).user_entity_ref == "user:default/john"
    with pytest.raises(NotFoundError):
        await resolver(SignInInfo("okta", ProfileInfo(email="jane@example.com")), ctx)
    with pytest.raises(BackstageError, match="^Okta profile contained no email$"):
        await resolver(SignInInfo("okta", ProfileInfo()), ctx)


async def test_an_unverified_email_matches_no_catalog_user(make: Make, fake: FakeOkta) -> None:
    # Issue 15, item 11 (nOAuth): Okta says the address is not verified.
    fake.userinfo = okta_userinfo(email_verified=False)
    result = await _sign_in(make(audience=ORG, authServerId="default"), fake)
    assert result.sign_in_facts["email_verified"] is False
    info = SignInInfo("okta", result.profile, result.sign_in_facts)
    resolver = OKTA_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    with pytest.raises(BackstageError, match="email is not verified$"):
        await resolver(info, resolver_context([JOHN]))
    fake.userinfo = okta_userinfo()
    verified = await _sign_in(make(audience=ORG, authServerId="default"), fake)
    info = SignInInfo("okta", verified.profile, verified.sign_in_facts)
    assert (await resolver(info, resolver_context([JOHN]))).user_entity_ref == JOHN.ref
