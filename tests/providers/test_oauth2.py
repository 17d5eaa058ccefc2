"""The generic ``oauth2`` provider against a fake authorization server.

Backstage: ``plugins/auth-backend-module-oauth2-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError
from app.identity.types import ProfileInfo
from app.providers import oauth2
from app.providers.base import AuthenticateInput, LogoutInput, LogoutResult, RefreshInput
from app.providers.base import StartInput as Start
from app.providers.oauth2_base import OAuth2Authenticator, UpstreamError
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP, s256
from tests.providers.helpers import (
    SECRETS,
    STATE,
    callback,
    deps,
    origin_and_path,
    query_of,
    sign_in,
)

pytestmark = pytest.mark.anyio

PATH = "auth.providers.oauth2.development"
CALLBACK = callback("oauth2")
SCOPE = "read:user repo"

MakeOAuth2 = Callable[..., OAuth2Authenticator]


def _raw(fake: FakeIdP, **config: Any) -> dict[str, Any]:
    return {
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "authorizationUrl": fake.url("authorize"),
        "tokenUrl": fake.url("token"),
        **config,
    }


@pytest.fixture
async def make_oauth2(
    fake: FakeIdP, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[MakeOAuth2]:
    created: list[OAuth2Authenticator] = []

    def make(**config: Any) -> OAuth2Authenticator:
        authenticator = oauth2.create(_raw(fake, **config), PATH, deps(fake, clock)).authenticator
        assert isinstance(authenticator, OAuth2Authenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _start(auth: OAuth2Authenticator, scope: str = SCOPE) -> str:
    result = await auth.start(
        Start(state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS)
    )
    return result.url


async def _sign_in(auth: OAuth2Authenticator, fake: FakeIdP, scope: str = SCOPE) -> Any:
    return await sign_in(auth, fake, provider="oauth2", scope=scope)


# -- /start ----------------------------------------------------------------------------


async def test_authorize_url_has_the_standard_params_and_nothing_else(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    url = await _start(make_oauth2())

    assert origin_and_path(url) == fake.url("authorize")
    assert query_of(url) == {
        "client_id": fake.client_id,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_authorize_url_keeps_the_configured_query_first(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    url = await _start(make_oauth2(authorizationUrl=fake.url("authorize") + "?audience=api"))

    assert url.startswith(fake.url("authorize") + "?audience=api&")
    assert query_of(url)["audience"] == "api"
    assert query_of(url)["state"] == STATE


async def test_empty_scope_is_omitted(make_oauth2: MakeOAuth2) -> None:
    assert "scope" not in query_of(await _start(make_oauth2(), scope=""))


async def test_prompt_and_nonce_are_never_sent(make_oauth2: MakeOAuth2) -> None:
    # passport-oauth2 ignores Backstage's prompt/accessType options.
    query = query_of(await _start(make_oauth2(prompt="consent")))
    assert "prompt" not in query
    assert "nonce" not in query
    assert "access_type" not in query


# -- authenticate ----------------------------------------------------------------------


async def test_token_exchange_sends_client_credentials_in_the_body(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.token_endpoint_auth_method = "client_secret_post"
    result = await _sign_in(make_oauth2(), fake)

    request = fake.last_request_to("token")
    assert "authorization" not in request.headers
    assert request.form["client_id"] == fake.client_id
    assert request.form["client_secret"] == fake.client_secret
    assert request.form["grant_type"] == "authorization_code"
    assert request.form["redirect_uri"] == CALLBACK
    assert request.form["code_verifier"] == SECRETS.code_verifier
    assert result.session.access_token
    assert result.session.scope == SCOPE
    assert result.session.refresh_token


async def test_include_basic_auth_sends_an_authorization_header(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.token_endpoint_auth_method = "client_secret_basic"
    await _sign_in(make_oauth2(includeBasicAuth=True), fake)

    assert fake.last_request_to("token").basic_auth == (fake.client_id, fake.client_secret)


async def test_profile_comes_from_the_id_token_claims(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.id_token_claims["picture"] = "https://idp.example.test/p.png"
    result = await _sign_in(make_oauth2(), fake, scope="openid email")

    assert result.profile == ProfileInfo(
        email="jane.doe@example.com",
        display_name="Jane Doe",
        picture="https://idp.example.test/p.png",
    )
    assert result.sign_in_facts["claims"]["sub"] == fake.subject
    # The generic provider has no userinfo endpoint.
    assert fake.requests_to("userinfo") == []


async def test_unverified_email_in_the_id_token_is_dropped(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.id_token_claims["email_verified"] = False
    result = await _sign_in(make_oauth2(), fake, scope="openid email")
    assert result.profile.email is None
    assert result.profile.display_name == "Jane Doe"


async def test_profile_is_empty_without_an_id_token(make_oauth2: MakeOAuth2, fake: FakeIdP) -> None:
    result = await _sign_in(make_oauth2(), fake)

    assert result.session.id_token is None
    assert result.profile == ProfileInfo()
    assert result.sign_in_facts == {"claims": {}}


async def test_access_denied_is_a_rejection(make_oauth2: MakeOAuth2, fake: FakeIdP) -> None:
    with pytest.raises(BackstageError) as info:
        await make_oauth2().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": "nope"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == "Authentication rejected, nope"
    assert fake.requests_to("token") == []


async def test_other_callback_errors_are_failures(make_oauth2: MakeOAuth2) -> None:
    with pytest.raises(BackstageError) as info:
        await make_oauth2().authenticate(
            AuthenticateInput(
                params={"error": "server_error", "error_description": "boom"},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == "Authentication failed, boom"


async def test_invalid_grant_is_an_authentication_error(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.fail("token", "invalid_grant")
    with pytest.raises(AuthenticationError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make_oauth2(), fake)


@pytest.mark.parametrize("mode", ["5xx", "garbage", "timeout", "network"])
async def test_token_endpoint_failures_are_upstream_errors(
    make_oauth2: MakeOAuth2, fake: FakeIdP, mode: str
) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain access"):
        await _sign_in(make_oauth2(), fake)


# -- refresh / logout ------------------------------------------------------------------


async def test_refresh_sends_the_scope_and_client_credentials(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    auth = make_oauth2()
    rt = fake.issue_refresh_token(SCOPE)

    result = await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))

    request = fake.last_request_to("token")
    assert request.form["grant_type"] == "refresh_token"
    assert request.form["refresh_token"] == rt
    assert request.form["scope"] == SCOPE
    assert request.form["client_id"] == fake.client_id
    assert request.form["client_secret"] == fake.client_secret
    # Not rotated: the old refresh token stays.
    assert result.session.refresh_token == rt
    assert result.session.scope == SCOPE


async def test_refresh_with_rotation(make_oauth2: MakeOAuth2, fake: FakeIdP) -> None:
    fake.rotate_refresh_tokens = True
    auth = make_oauth2(includeBasicAuth=True)
    rt = fake.issue_refresh_token(SCOPE)

    result = await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))

    assert fake.last_request_to("token").basic_auth == (fake.client_id, fake.client_secret)
    assert result.session.refresh_token not in (None, rt)
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_gr"):
        await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))


async def test_refresh_falls_back_to_the_requested_scope(
    make_oauth2: MakeOAuth2, fake: FakeIdP
) -> None:
    fake.token_scope = ""  # the server does not echo a scope
    rt = fake.issue_refresh_token(SCOPE)
    result = await make_oauth2().refresh(RefreshInput(refresh_token=rt, scope=SCOPE))
    assert result.session.scope == SCOPE


async def test_logout_does_nothing_upstream(make_oauth2: MakeOAuth2, fake: FakeIdP) -> None:
    result = await make_oauth2().logout(LogoutInput(refresh_token="rt-1"))
    assert result == LogoutResult()
    assert fake.requests == []


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["scope", "scopes"])
def test_scope_key_is_refused(fake: FakeIdP, clock: FakeClock, key: str) -> None:
    with pytest.raises(ConfigError, match="not supported, use additionalScopes instead"):
        oauth2.create(_raw(fake, **{key: "openid"}), PATH, deps(fake, clock))


@pytest.mark.parametrize("missing", ["authorizationUrl", "tokenUrl", "clientId", "clientSecret"])
def test_missing_key_is_named(fake: FakeIdP, clock: FakeClock, missing: str) -> None:
    raw = _raw(fake)
    del raw[missing]
    with pytest.raises(ConfigError, match=rf"{PATH}\.{missing}"):
        oauth2.create(raw, PATH, deps(fake, clock))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("authorizationUrl", "ftp://idp.example.test/authorize"),
        ("authorizationUrl", "/authorize"),
        ("tokenUrl", "javascript:alert(1)"),
        ("tokenUrl", "idp.example.test/token"),
    ],
)
def test_non_http_urls_are_refused(fake: FakeIdP, clock: FakeClock, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{PATH}\.{key}: .* is not an absolute http"):
        oauth2.create(_raw(fake, **{key: value}), PATH, deps(fake, clock))


def test_additional_scopes_are_read(fake: FakeIdP, clock: FakeClock) -> None:
    build = oauth2.create(_raw(fake, additionalScopes="a b,c"), PATH, deps(fake, clock))
    assert build.authenticator.additional_scopes == ("a", "b", "c")
    assert build.authenticator.required_scopes == ()
    assert build.authenticator.persist_scopes is False
