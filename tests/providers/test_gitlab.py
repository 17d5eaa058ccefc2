"""The ``gitlab`` provider against a fake GitLab.

Backstage: ``plugins/auth-backend-module-gitlab-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, NotFoundError
from app.identity.catalog import CatalogUser
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import gitlab
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.gitlab import GitlabAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.resolvers_profile import GITLAB_RESOLVERS
from tests.fakes.fake_gitlab import FakeGitLab, gitlab_user
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

PATH = "auth.providers.gitlab.development"
CALLBACK = callback("gitlab")
SELF_MANAGED = "https://git.example.com"

Make = Callable[..., GitlabAuthenticator]


@pytest.fixture
def fake() -> FakeGitLab:
    return FakeGitLab()


@pytest.fixture
async def make(fake: FakeGitLab, anyio_backend: str) -> AsyncIterator[Make]:
    authenticators = Authenticators(gitlab.create, PATH, GitlabAuthenticator)

    def build(service: FakeGitLab = fake, **config: Any) -> GitlabAuthenticator:
        return authenticators.build(service, **config)

    yield build
    await authenticators.aclose()


async def _sign_in(auth: GitlabAuthenticator, fake: FakeGitLab) -> Any:
    return await sign_in(auth, fake, callback=CALLBACK, scope="read_user")


async def test_authorize_url_is_gitlab_com(make: Make) -> None:
    started = await make().start(
        StartInput(state=STATE, scope="read_user", callback_url=CALLBACK, secrets=SECRETS)
    )

    assert origin_and_path(started.url) == "https://gitlab.com/oauth/authorize"
    assert query_of(started.url) == {
        "client_id": "backstage-client",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": "read_user",
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_required_scope_is_read_user(make: Make) -> None:
    auth = make(additionalScopes="read_api")
    assert auth.persist_scopes is False
    assert auth.transform_scopes([], [], auth.required_scopes, auth.additional_scopes) == [
        "read_user",
        "read_api",
    ]


@pytest.mark.parametrize("audience", [SELF_MANAGED, SELF_MANAGED + "/"])
async def test_audience_is_the_gitlab_base_url(make: Make, audience: str) -> None:
    fake = FakeGitLab(base_url=SELF_MANAGED)
    auth = make(fake, audience=audience)

    result = await _sign_in(auth, fake)

    assert fake.last_request_to("token").url == f"{SELF_MANAGED}/oauth/token"
    assert fake.last_request_to("profile").url == f"{SELF_MANAGED}/api/v4/user"
    assert result.sign_in_facts["profile_url"] == f"{SELF_MANAGED}/john_smith"


async def test_audience_must_be_a_url(make: Make) -> None:
    with pytest.raises(ConfigError, match=r"auth\.providers\.gitlab\.development\.audience"):
        make(audience="git.example.com")


async def test_code_exchange_and_profile(make: Make, fake: FakeGitLab) -> None:
    result = await _sign_in(make(), fake)

    token = fake.last_request_to("token")
    assert token.form["grant_type"] == "authorization_code"
    assert token.form["code_verifier"] == SECRETS.code_verifier
    assert token.form["client_secret"] == fake.client_secret
    assert result.session.expires_in_seconds == 7200
    assert result.session.scope == "read_user"
    assert result.profile == ProfileInfo(
        email="john@example.com",
        display_name="John Smith",
        picture="https://gitlab.com/uploads/-/system/user/avatar/1/cd8.jpeg",
    )
    assert result.sign_in_facts == {
        "username": "john_smith",
        "user_id": "1",
        "profile_url": "https://gitlab.com/john_smith",
    }


async def test_display_name_falls_back_to_the_username(make: Make, fake: FakeGitLab) -> None:
    fake.user = gitlab_user(name="", email=None, avatar_url=None)
    result = await _sign_in(make(), fake)
    assert result.profile == ProfileInfo(display_name="john_smith")


async def test_refresh_rotates_the_refresh_token(make: Make, fake: FakeGitLab) -> None:
    auth = make()
    result = await _sign_in(auth, fake)

    refreshed = await auth.refresh(
        RefreshInput(refresh_token=result.session.refresh_token, scope="read_user")
    )
    assert refreshed.session.refresh_token not in (None, result.session.refresh_token)
    assert refreshed.profile.display_name == "John Smith"

    # The old refresh token is spent.
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid"):
        await auth.refresh(
            RefreshInput(refresh_token=result.session.refresh_token, scope="read_user")
        )


async def test_no_logout_hook(make: Make, fake: FakeGitLab) -> None:
    assert await make().logout(LogoutInput(refresh_token="r")) == LogoutResult()
    assert fake.requests == []


async def test_access_denied(make: Make) -> None:
    with pytest.raises(BackstageError, match="^Authentication rejected, The resource owner"):
        await make().authenticate(
            AuthenticateInput(
                params={
                    "error": "access_denied",
                    "error_description": "The resource owner or authorization server denied "
                    "the request.",
                },
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage"])
async def test_outages(make: Make, fake: FakeGitLab, mode: str) -> None:
    auth = make()
    fake.fail("token", mode, times=1)
    with pytest.raises(UpstreamError, match="^Authentication failed, Failed to obtain"):
        await _sign_in(auth, fake)
    fake.fail("profile", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(auth, fake)


# -- sign-in resolvers -----------------------------------------------------------------------

JOHN = CatalogUser(ref="user:default/john_smith", annotations={"git.example.com/user-id": "1"})


def _info(**result: Any) -> SignInInfo:
    return SignInInfo("gitlab", ProfileInfo(), result)


async def test_username_matching_user_entity_name(anyio_backend: str) -> None:
    resolver = GITLAB_RESOLVERS["usernameMatchingUserEntityName"]({})
    ctx = resolver_context([JOHN])
    identity = await resolver(_info(username="john_smith"), ctx)
    assert identity.user_entity_ref == "user:default/john_smith"
    with pytest.raises(BackstageError, match="^GitLab user profile does not contain a username$"):
        await resolver(_info(), ctx)


async def test_user_id_annotation_is_per_gitlab_host(anyio_backend: str) -> None:
    resolver = GITLAB_RESOLVERS["userIdMatchingUserEntityAnnotation"]({})
    ctx = resolver_context([JOHN])

    here = _info(user_id="1", profile_url=f"{SELF_MANAGED}/john_smith")
    assert (await resolver(here, ctx)).user_entity_ref == "user:default/john_smith"
    # The same id on gitlab.com is someone else.
    with pytest.raises(NotFoundError):
        await resolver(_info(user_id="1", profile_url="https://gitlab.com/john_smith"), ctx)
    with pytest.raises(BackstageError, match="^GitLab user profile does not contain a user ID$"):
        await resolver(_info(profile_url=f"{SELF_MANAGED}/john_smith"), ctx)
    with pytest.raises(BackstageError, match="does not contain a profile URL$"):
        await resolver(_info(user_id="1"), ctx)
