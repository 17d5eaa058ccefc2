"""The ``google`` provider against a fake Google.

Backstage: ``plugins/auth-backend-module-google-provider/src/authenticator.ts``
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.core.errors import AuthenticationError, BackstageError, NotFoundError
from app.identity.catalog import CatalogUser
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import google
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.google import GoogleAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.resolvers_profile import GOOGLE_RESOLVERS
from tests.fakes.fake_google import SUB, FakeGoogle, google_userinfo
from tests.fakes.fake_idp import s256
from tests.fakes.fake_oauth_service import sign_in
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

PATH = "auth.providers.google.development"
CALLBACK = callback("google")
SCOPE = (
    "openid https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile"
)

Make = Callable[..., GoogleAuthenticator]


@pytest.fixture
def fake() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture
async def make(fake: FakeGoogle, anyio_backend: str) -> AsyncIterator[Make]:
    authenticators = Authenticators(google.create, PATH, GoogleAuthenticator)

    def build(**config: Any) -> GoogleAuthenticator:
        return authenticators.build(fake, **config)

    yield build
    await authenticators.aclose()


async def _sign_in(auth: GoogleAuthenticator, fake: FakeGoogle) -> Any:
    return await sign_in(auth, fake, callback=CALLBACK, scope=SCOPE)


# -- defaults and overrides -----------------------------------------------------------


async def test_authorize_url_asks_for_offline_access_with_consent(make: Make) -> None:
    started = await make().start(
        StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
    )

    assert origin_and_path(started.url) == "https://accounts.google.com/o/oauth2/v2/auth"
    assert query_of(started.url) == {
        "client_id": "backstage-client",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_required_scopes_are_the_full_urls_and_not_persisted(make: Make) -> None:
    auth = make(additionalScopes=["https://www.googleapis.com/auth/calendar.readonly"])

    assert auth.persist_scopes is False
    assert " ".join(auth.required_scopes) == SCOPE
    assert auth.transform_scopes([], [], auth.required_scopes, auth.additional_scopes) == [
        *SCOPE.split(),
        "https://www.googleapis.com/auth/calendar.readonly",
    ]


# -- the code exchange and the profile ---------------------------------------------------


async def test_code_exchange(make: Make, fake: FakeGoogle) -> None:
    result = await _sign_in(make(), fake)

    token = fake.last_request_to("token")
    assert token.form == {
        "grant_type": "authorization_code",
        "code": token.form["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": SECRETS.code_verifier,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    session = result.session
    assert session.access_token.startswith("ya29.")
    assert session.refresh_token is not None
    assert session.id_token is not None
    assert session.scope == SCOPE
    assert session.expires_in_seconds == 3599
    assert fake.last_request_to("profile").bearer == session.access_token


async def test_profile_comes_from_userinfo(make: Make, fake: FakeGoogle) -> None:
    result = await _sign_in(make(), fake)

    assert result.profile == ProfileInfo(
        email="jane@example.com",
        display_name="Jane Doe",
        picture="https://lh3.googleusercontent.com/a/jane=s96-c",
    )
    assert result.sign_in_facts["user_id"] == SUB
    assert result.sign_in_facts["claims"]["hd"] == "example.com"


async def test_profile_gaps_fall_back_to_the_id_token_except_the_name(
    make: Make, fake: FakeGoogle
) -> None:
    fake.userinfo = google_userinfo(email=None, picture=None, name=None)
    result = await _sign_in(make(), fake)

    # passport: displayName = name ?? id (the sub), so the ID token's name is never used.
    assert result.profile == ProfileInfo(
        email="jane@example.com",
        display_name=SUB,
        picture="https://lh3.googleusercontent.com/a/from-id-token",
    )


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh_keeps_the_refresh_token(make: Make, fake: FakeGoogle) -> None:
    auth = make()
    result = await _sign_in(auth, fake)

    refreshed = await auth.refresh(
        RefreshInput(refresh_token=result.session.refresh_token, scope=SCOPE)
    )

    grant = fake.last_request_to("token").form
    assert grant["grant_type"] == "refresh_token"
    assert grant["scope"] == SCOPE
    assert refreshed.session.access_token != result.session.access_token
    # Google does not rotate: the same refresh token stays.
    assert refreshed.session.refresh_token == result.session.refresh_token
    assert refreshed.profile.email == "jane@example.com"


async def test_refresh_with_a_revoked_token_is_invalid_grant(make: Make, fake: FakeGoogle) -> None:
    with pytest.raises(AuthenticationError) as info:
        await make().refresh(RefreshInput(refresh_token="1//revoked", scope=SCOPE))
    assert info.value.message == (
        "Failed to refresh access token, invalid_grant (Token has been expired or revoked.)"
    )


# -- logout -----------------------------------------------------------------------------------


async def test_logout_revokes_the_refresh_token(make: Make, fake: FakeGoogle) -> None:
    auth = make()
    result = await _sign_in(auth, fake)

    assert await auth.logout(LogoutInput(refresh_token=result.session.refresh_token)) == (
        LogoutResult()
    )

    revoke = fake.last_request_to("revoke")
    # google-auth-library's revokeToken: the token alone.
    assert revoke.form == {"token": result.session.refresh_token}
    assert fake.revoked == [result.session.refresh_token]
    with pytest.raises(AuthenticationError):
        await auth.refresh(RefreshInput(refresh_token=result.session.refresh_token, scope=SCOPE))


async def test_logout_without_a_session_calls_nobody(make: Make, fake: FakeGoogle) -> None:
    assert await make().logout(LogoutInput(refresh_token=None)) == LogoutResult()
    assert fake.requests == []


@pytest.mark.parametrize("mode", ["5xx", "timeout", "network", "invalid_token"])
async def test_logout_survives_a_failed_revocation(
    make: Make, fake: FakeGoogle, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("revoke", mode)
    with caplog.at_level(logging.WARNING, logger="app.providers.google"):
        assert await make().logout(LogoutInput(refresh_token="1//x")) == LogoutResult()
    assert "google token revocation" in caplog.text


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("access_denied", "Authentication rejected, the user said no"),
        ("admin_policy_enforced", "Authentication failed, the user said no"),
    ],
)
async def test_callback_errors(make: Make, error: str, expected: str) -> None:
    with pytest.raises(BackstageError) as info:
        await make().authenticate(
            AuthenticateInput(
                params={"error": error, "error_description": "the user said no", "state": STATE},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == expected


async def test_a_used_code_is_an_authentication_error(make: Make, fake: FakeGoogle) -> None:
    fake.fail("token", "invalid_grant")
    with pytest.raises(AuthenticationError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(make(), fake)


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage"])
async def test_token_endpoint_outage(make: Make, fake: FakeGoogle, mode: str) -> None:
    auth = make()
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await _sign_in(auth, fake)
    assert info.value.status_code == 503
    with pytest.raises(UpstreamError, match="^Failed to refresh access token"):
        await auth.refresh(RefreshInput(refresh_token="1//x", scope=SCOPE))


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage", "401"])
async def test_userinfo_failure(make: Make, fake: FakeGoogle, mode: str) -> None:
    fake.fail("profile", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make(), fake)


# -- sign-in resolver ----------------------------------------------------------------------------

JANE = CatalogUser(ref="user:default/jane", annotations={"google.com/email": "jane@example.com"})


async def test_email_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolver = GOOGLE_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    ctx = resolver_context([JANE])

    identity = await resolver(SignInInfo("google", ProfileInfo(email="Jane@Example.com")), ctx)
    assert identity.user_entity_ref == "user:default/jane"
    with pytest.raises(NotFoundError):
        await resolver(SignInInfo("google", ProfileInfo(email="joe@example.com")), ctx)
    with pytest.raises(BackstageError, match="^Google profile contained no email$"):
        await resolver(SignInInfo("google", ProfileInfo()), ctx)

    dangerous = GOOGLE_RESOLVERS["emailMatchingUserEntityAnnotation"](
        {"dangerouslyAllowSignInWithoutUserInCatalog": True}
    )
    identity = await dangerous(SignInInfo("google", ProfileInfo(email="joe@example.com")), ctx)
    assert identity.user_entity_ref == "user:default/joe@example.com"


async def test_an_unverified_email_matches_no_catalog_user(make: Make, fake: FakeGoogle) -> None:
    # Issue 15, item 11 (nOAuth): Google says the address is not verified.
    fake.userinfo = google_userinfo(email_verified=False)
    result = await _sign_in(make(), fake)
    assert result.sign_in_facts["email_verified"] is False
    resolver = GOOGLE_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    with pytest.raises(BackstageError, match="email is not verified$"):
        await resolver(
            SignInInfo("google", result.profile, result.sign_in_facts), resolver_context([JANE])
        )
