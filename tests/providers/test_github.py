"""The ``github`` provider against a fake github.com.

Backstage: ``plugins/auth-backend-module-github-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, ConflictError, NotFoundError
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.resolvers import COMMON_RESOLVERS, ResolverConfigError, build_sign_in_resolver
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import github
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.github import ACCESS_TOKEN_PREFIX, GithubAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.registry_types import OAuthProviderDefinition
from app.providers.resolvers_profile import GITHUB_RESOLVERS
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import make_client
from tests.fakes.clock import FakeClock
from tests.fakes.fake_github import FakeGitHub, github_user
from tests.fakes.fake_idp import s256
from tests.fakes.fake_oauth_service import sign_in
from tests.fakes.resolver_context import claims_of, resolver_context
from tests.handlers.helpers import (
    XRW,
    cookie_header,
    decode_state,
    page,
    set_cookies,
)
from tests.handlers.helpers import start as handler_start
from tests.providers.helpers import (
    SECRETS,
    STATE,
    Authenticators,
    callback,
    origin_and_path,
    query_of,
)

pytestmark = pytest.mark.anyio

PATH = "auth.providers.github.development"
CALLBACK = callback("github")
GHE = "https://ghe.example.com"

Make = Callable[..., GithubAuthenticator]


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
async def make(fake: FakeGitHub, anyio_backend: str) -> AsyncIterator[Make]:
    authenticators = Authenticators(github.create, PATH, GithubAuthenticator)

    def build(service: FakeGitHub = fake, **config: Any) -> GithubAuthenticator:
        return authenticators.build(service, **config)

    yield build
    await authenticators.aclose()


async def _sign_in(auth: GithubAuthenticator, fake: FakeGitHub, scope: str = "read:user") -> Any:
    return await sign_in(auth, fake, callback=CALLBACK, scope=scope)


async def _start_url(auth: GithubAuthenticator, scope: str = "read:user") -> str:
    started = await auth.start(
        StartInput(state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert started.status == 302
    return started.url


# -- defaults and overrides -----------------------------------------------------------


async def test_authorize_url_is_github_com_with_pkce_and_no_offline_params(make: Make) -> None:
    url = await _start_url(make())

    assert origin_and_path(url) == "https://github.com/login/oauth/authorize"
    # passport-github2 has no authorizationParams: no access_type, no prompt.
    assert query_of(url) == {
        "client_id": "backstage-client",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": "read:user",
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_required_scope_is_read_user_and_scopes_persist(make: Make) -> None:
    auth = make(additionalScopes="repo, gist")

    assert auth.persist_scopes is True
    assert auth.required_scopes == ("read:user",)
    assert auth.additional_scopes == ("repo", "gist")
    # Protocol doc 2.5: ?scope=repo gives "repo read:user".
    assert auth.transform_scopes(["repo"], [], auth.required_scopes, ()) == ["repo", "read:user"]


async def test_enterprise_instance_url_moves_every_endpoint(make: Make) -> None:
    fake = FakeGitHub(instance_url=GHE)
    auth = make(fake, enterpriseInstanceUrl=GHE + "/")

    url = await _start_url(auth)
    assert origin_and_path(url) == f"{GHE}/login/oauth/authorize"
    result = await _sign_in(auth, fake)

    assert fake.last_request_to("token").url == f"{GHE}/login/oauth/access_token"
    assert fake.last_request_to("profile").url == f"{GHE}/api/v3/user"
    assert result.profile.display_name == "The Octocat"


@pytest.mark.parametrize(
    "config",
    [
        {"enterpriseInstanceUrl": "ghe.example.com"},
        {"x-endpoints": {"tokenUrl": "not a url"}},
        {"x-endpoints": {"tokenUrI": "https://typo.example"}},
        {"clientId": ""},
    ],
)
async def test_bad_config_is_refused_at_startup(make: Make, config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=PATH):
        make(**config)


async def test_x_endpoints_replace_the_built_in_ones(make: Make) -> None:
    fake = FakeGitHub(instance_url="https://proxy.example")
    auth = make(
        fake,
        **{
            "x-endpoints": {
                "authorizationUrl": "https://proxy.example/login/oauth/authorize",
                "tokenUrl": "https://proxy.example/login/oauth/access_token",
                "profileUrl": "https://proxy.example/api/v3/user",
            }
        },
    )
    result = await _sign_in(auth, fake)
    assert result.profile.email == "octocat@github.com"


# -- the code exchange ------------------------------------------------------------------


async def test_code_exchange_sends_credentials_in_the_body_and_asks_for_json(
    make: Make, fake: FakeGitHub
) -> None:
    await _sign_in(make(), fake)

    token = fake.last_request_to("token")
    assert token.method == "POST"
    assert token.headers["accept"] == "application/json"
    assert "authorization" not in token.headers
    assert token.form == {
        "grant_type": "authorization_code",
        "code": token.form["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": SECRETS.code_verifier,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    profile = fake.last_request_to("profile")
    assert profile.bearer is not None and profile.bearer.startswith("gho_")


async def test_oauth_app_token_becomes_the_refresh_token(make: Make, fake: FakeGitHub) -> None:
    result = await _sign_in(make(), fake, scope="repo read:user")

    session = result.session
    assert session.expires_in_seconds is None
    assert session.refresh_token == ACCESS_TOKEN_PREFIX + session.access_token
    assert session.scope == "repo,read:user"  # GitHub's own comma form; the handler persists ours


async def test_github_app_token_keeps_its_refresh_token(make: Make) -> None:
    fake = FakeGitHub(kind="github_app")
    result = await _sign_in(make(fake), fake)

    assert result.session.refresh_token is not None
    assert result.session.refresh_token.startswith("refresh-")
    assert result.session.expires_in_seconds == 28800


# -- the profile ------------------------------------------------------------------------------


async def test_profile_and_sign_in_facts_come_from_user(make: Make, fake: FakeGitHub) -> None:
    result = await _sign_in(make(), fake)

    assert result.profile == ProfileInfo(
        email="octocat@github.com",
        display_name="The Octocat",
        picture="https://avatars.githubusercontent.com/u/583231?v=4",
    )
    assert result.sign_in_facts == {
        "username": "octocat",
        "user_id": "583231",
        "node_id": "MDQ6VXNlcjU4MzIzMQ==",
        "profile_url": "https://github.com/octocat",
    }


async def test_profile_without_name_or_public_email(make: Make, fake: FakeGitHub) -> None:
    fake.user = github_user(name=None, email=None, avatar_url=None)
    result = await _sign_in(make(), fake)

    # displayName = name ?? login; a private email stays private (no /user/emails call).
    assert result.profile == ProfileInfo(display_name="octocat")
    assert not [r for r in fake.requests if r.url.endswith("/emails")]


# -- refresh ----------------------------------------------------------------------------------


async def test_oauth_app_refresh_rereads_the_profile_with_the_same_token(
    make: Make, fake: FakeGitHub
) -> None:
    auth = make()
    result = await _sign_in(auth, fake)
    fake.user = github_user(name="Renamed Octocat")
    tokens_before = len(fake.requests_to("token"))

    refreshed = await auth.refresh(
        RefreshInput(
            refresh_token=result.session.refresh_token,
            scope="read:user",
            scope_already_granted=True,
        )
    )

    assert len(fake.requests_to("token")) == tokens_before
    assert refreshed.session.access_token == result.session.access_token
    assert refreshed.session.refresh_token == result.session.refresh_token
    assert refreshed.session.scope == "read:user"
    assert refreshed.session.expires_in_seconds is None
    assert refreshed.session.provider_info() == {
        "accessToken": result.session.access_token,
        "scope": "read:user",
    }
    assert refreshed.profile.display_name == "Renamed Octocat"
    assert refreshed.sign_in_facts["username"] == "octocat"


@pytest.mark.parametrize("granted", [False, None])
async def test_oauth_app_refresh_cannot_gain_scope(
    make: Make, fake: FakeGitHub, granted: bool | None
) -> None:
    with pytest.raises(BackstageError) as info:
        await make().refresh(
            RefreshInput(
                refresh_token=ACCESS_TOKEN_PREFIX + "gho_1",
                scope="read:user repo",
                scope_already_granted=granted,
            )
        )
    assert info.value.message == "Refresh failed, session has not been granted the requested scope"
    assert info.value.name == "Error"
    assert fake.requests == []


async def test_oauth_app_refresh_with_a_revoked_token(make: Make, fake: FakeGitHub) -> None:
    auth = make()
    result = await _sign_in(auth, fake)
    fake.revoke_all()

    with pytest.raises(BackstageError) as info:
        await auth.refresh(
            RefreshInput(
                refresh_token=result.session.refresh_token,
                scope="read:user",
                scope_already_granted=True,
            )
        )
    assert info.value.message == "Invalid access token"


async def test_github_app_refresh_is_a_refresh_grant(make: Make) -> None:
    fake = FakeGitHub(kind="github_app")
    auth = make(fake)
    result = await _sign_in(auth, fake)

    refreshed = await auth.refresh(
        RefreshInput(refresh_token=result.session.refresh_token, scope="read:user")
    )

    grant = fake.last_request_to("token").form
    assert grant["grant_type"] == "refresh_token"
    assert grant["refresh_token"] == result.session.refresh_token
    assert grant["client_secret"] == fake.client_secret
    assert refreshed.session.access_token != result.session.access_token
    # GitHub spends the old refresh token and hands out a new one.
    assert refreshed.session.refresh_token not in (None, result.session.refresh_token)
    assert refreshed.profile.email == "octocat@github.com"


async def test_github_app_refresh_with_a_spent_token_is_invalid_grant(make: Make) -> None:
    fake = FakeGitHub(kind="github_app")
    auth = make(fake)
    result = await _sign_in(auth, fake)
    await auth.refresh(RefreshInput(refresh_token=result.session.refresh_token, scope=""))

    # bad_refresh_token, sent with HTTP 200, is GitHub's invalid_grant.
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, bad_refresh"):
        await auth.refresh(RefreshInput(refresh_token=result.session.refresh_token, scope=""))


# -- failures ----------------------------------------------------------------------------------


async def test_access_denied_is_a_rejection(make: Make) -> None:
    with pytest.raises(BackstageError) as info:
        await make().authenticate(
            AuthenticateInput(
                params={
                    "error": "access_denied",
                    "error_description": "The user has denied your application access.",
                    "state": STATE,
                },
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == (
        "Authentication rejected, The user has denied your application access."
    )


async def test_an_expired_code_is_an_authentication_error(make: Make, fake: FakeGitHub) -> None:
    auth = make()
    fake.fail("token", "bad_verification_code")
    with pytest.raises(AuthenticationError) as info:
        await _sign_in(auth, fake)
    assert info.value.message.startswith(
        "Authentication failed, Failed to obtain access token, bad_verification_code"
    )


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage", "network"])
async def test_token_endpoint_outage(make: Make, fake: FakeGitHub, mode: str) -> None:
    auth = make()
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await _sign_in(auth, fake)
    assert info.value.status_code == 503
    assert info.value.message.startswith("Authentication failed, Failed to obtain access token")


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage"])
async def test_profile_outage(make: Make, fake: FakeGitHub, mode: str) -> None:
    auth = make()
    fake.fail("profile", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(auth, fake)


async def test_no_logout_hook(make: Make, fake: FakeGitHub) -> None:
    result = await make().logout(LogoutInput(refresh_token=ACCESS_TOKEN_PREFIX + "gho_1"))
    assert result == LogoutResult()
    assert fake.requests == []


# -- sign-in resolvers -------------------------------------------------------------------------

OCTO = CatalogUser(
    ref="user:default/octocat",
    annotations={"github.com/user-id": "MDQ6VXNlcjU4MzIzMQ=="},
    member_of=("group:default/hubbers",),
)
CASE_TWIN = CatalogUser(
    ref="user:default/twin", annotations={"github.com/user-id": "mdq6vxnlcju4mzizmq=="}
)


def _info(**result: Any) -> SignInInfo:
    return SignInInfo(provider_id="github", profile=ProfileInfo(), result=result)


def _resolver(name: str, **options: Any) -> Any:
    return GITHUB_RESOLVERS[name](options)


async def test_username_matching_user_entity_name(anyio_backend: str) -> None:
    ctx = resolver_context([OCTO])
    identity = await _resolver("usernameMatchingUserEntityName")(_info(username="octocat"), ctx)
    assert identity.user_entity_ref == "user:default/octocat"
    assert identity.ownership_entity_refs == ("user:default/octocat", "group:default/hubbers")

    with pytest.raises(NotFoundError):
        await _resolver("usernameMatchingUserEntityName")(_info(username="ghost"), ctx)
    fallback = _resolver(
        "usernameMatchingUserEntityName", dangerouslyAllowSignInWithoutUserInCatalog=True
    )
    assert (await fallback(_info(username="ghost"), ctx)).user_entity_ref == "user:default/ghost"
    with pytest.raises(BackstageError, match="^GitHub user profile does not contain a username$"):
        await _resolver("usernameMatchingUserEntityName")(_info(), ctx)


async def test_user_id_matching_user_entity_annotation(anyio_backend: str) -> None:
    ctx = resolver_context([OCTO])
    resolver = _resolver("userIdMatchingUserEntityAnnotation")

    identity = await resolver(_info(node_id="MDQ6VXNlcjU4MzIzMQ=="), ctx)
    assert identity.user_entity_ref == "user:default/octocat"
    assert identity.ownership_entity_refs == ("user:default/octocat", "group:default/hubbers")
    assert claims_of(identity)["sub"] == "user:default/octocat"
    with pytest.raises(BackstageError, match="^GitHub user profile does not contain a user ID$"):
        await resolver(_info(username="octocat"), ctx)


async def test_user_id_must_match_exactly(anyio_backend: str) -> None:
    resolver = _resolver("userIdMatchingUserEntityAnnotation")
    # Node ids differ by case only: the catalog's case-insensitive match is not enough.
    with pytest.raises(BackstageError, match="^GitHub user ID does not match the catalog user$"):
        await resolver(_info(node_id="MDQ6VXNlcjU4MzIzMQ=="), resolver_context([CASE_TWIN]))
    with pytest.raises(ConflictError):
        await resolver(_info(node_id="MDQ6VXNlcjU4MzIzMQ=="), resolver_context([OCTO, CASE_TWIN]))


async def test_user_id_fallback_without_catalog_user(anyio_backend: str) -> None:
    ctx = resolver_context([])
    with pytest.raises(NotFoundError):
        await _resolver("userIdMatchingUserEntityAnnotation")(_info(node_id="U_kgDOAAPqnw"), ctx)
    resolver = _resolver(
        "userIdMatchingUserEntityAnnotation", dangerouslyAllowSignInWithoutUserInCatalog=True
    )
    identity = await resolver(_info(node_id="U_kgDOAAPqnw"), ctx)
    assert identity.user_entity_ref == "user:default/U_kgDOAAPqnw"


async def test_resolvers_from_config_with_the_common_ones(make: Make, fake: FakeGitHub) -> None:
    # The peer's app-config: usernameMatchingUserEntityName + dangerous fallback.
    resolve = build_sign_in_resolver(
        [
            {
                "resolver": "usernameMatchingUserEntityName",
                "dangerouslyAllowSignInWithoutUserInCatalog": True,
            }
        ],
        available={**COMMON_RESOLVERS, **GITHUB_RESOLVERS},
        config_path=PATH + ".signIn.resolvers",
    )
    result = await _sign_in(make(), fake)
    info = SignInInfo("github", result.profile, result.sign_in_facts)
    assert (await resolve(info, resolver_context([]))).user_entity_ref == "user:default/octocat"

    with pytest.raises(ResolverConfigError, match="unknown option 'allowedDomains'"):
        build_sign_in_resolver(
            [{"resolver": "userIdMatchingUserEntityAnnotation", "allowedDomains": ["x"]}],
            available={**COMMON_RESOLVERS, **GITHUB_RESOLVERS},
            config_path=PATH + ".signIn.resolvers",
        )


# -- end to end through the handlers ------------------------------------------------------------


def _app(fake: FakeGitHub, clock: FakeClock) -> Any:
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": "http://localhost:7007"},
            "auth": {
                "session": {"secret": "github-provider-tests-secret"},
                "providers": {
                    "github": {
                        "development": {
                            "clientId": fake.client_id,
                            "clientSecret": fake.client_secret,
                            "signIn": {
                                "resolvers": [{"resolver": "usernameMatchingUserEntityName"}]
                            },
                        }
                    }
                },
            },
        }
    )
    definition = OAuthProviderDefinition(
        factory=github.create,
        resolvers={**COMMON_RESOLVERS, **GITHUB_RESOLVERS},
    )
    return create_app(
        settings,
        development=True,
        deps=Dependencies(
            clock=clock,
            transport=httpx2.MockTransport(fake),
            catalog=InMemoryCatalog([OCTO]),
            providers={"github": definition},
        ),
    )


def test_an_oauth_app_session_end_to_end(fake: FakeGitHub) -> None:
    clock = FakeClock()
    with make_client(_app(fake, clock)) as client:
        started = handler_start(client, "github", scope="repo", origin="http://localhost:3000")
        location = started.response.headers["location"]
        assert origin_and_path(location) == "https://github.com/login/oauth/authorize"
        assert query_of(location)["scope"] == "repo read:user"
        assert ("scope", "repo read:user") in decode_state(started.state)

        frame = client.get(
            "/api/auth/github/handler/frame",
            params={"code": fake.authorize(location), "state": started.state},
            headers=started.cookie_header,
        )
        message, _ = page(frame)
        response = message["response"]
        access_token = response["providerInfo"]["accessToken"]
        assert response["providerInfo"] == {"accessToken": access_token, "scope": "repo read:user"}
        assert response["profile"]["displayName"] == "The Octocat"
        assert response["backstageIdentity"]["identity"]["userEntityRef"] == (
            "user:default/octocat"
        )
        jar = {c.name: c.value for c in set_cookies(frame) if c.value and "nonce" not in c.name}
        assert set(jar) == {"github-refresh-token", "github-granted-scope"}

        refreshed = client.get(
            "/api/auth/github/refresh",
            params={"env": "development"},
            headers={**XRW, **cookie_header(jar)},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["providerInfo"] == {
            "accessToken": access_token,
            "scope": "repo read:user",
        }
        # The same pseudo refresh token: no new refresh cookie.
        assert not [c for c in set_cookies(refreshed) if c.name == "github-refresh-token"]

        # Past the refresh-coalescing grace window, so that this refresh is not served the
        # previous one's result.
        clock.advance(60)
        wider = client.get(
            "/api/auth/github/refresh",
            params={"env": "development", "scope": "admin:org"},
            headers={**XRW, **cookie_header(jar)},
        )
        assert wider.status_code == 401
        assert wider.json()["error"] == {
            "name": "AuthenticationError",
            "message": "Refresh failed; caused by Error: Refresh failed, session has not been "
            "granted the requested scope",
            "cause": {
                "name": "Error",
                "message": "Refresh failed, session has not been granted the requested scope",
            },
        }
