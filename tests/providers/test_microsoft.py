"""The ``microsoft`` provider against a fake Microsoft identity platform and Graph
(Backstage: ``plugins/auth-backend-module-microsoft-provider/src/authenticator.ts``)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, NotFoundError
from app.identity.catalog import CatalogUser
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import microsoft
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.microsoft import MicrosoftAuthenticator
from app.providers.oauth2_base import UpstreamError
from app.providers.registry_types import ProviderDeps
from app.providers.resolvers_profile import MICROSOFT_RESOLVERS
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import s256
from tests.fakes.fake_microsoft import OBJECT_ID, PHOTO, TENANT, FakeMicrosoft, graph_user
from tests.fakes.fake_oauth_service import fake_jwt, sign_in
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

PATH = "auth.providers.microsoft.development"
CALLBACK = callback("microsoft")
SCOPE = "email openid offline_access user.read"
RESOURCE_SCOPE = "api://backend/access_as_user"
PHOTO_URL = "data:image/jpeg;base64," + base64.b64encode(PHOTO).decode()
ADELE = ProfileInfo(email="AdeleV@contoso.com", display_name="Adele Vance", picture=PHOTO_URL)

Make = Callable[..., MicrosoftAuthenticator]


@pytest.fixture
def fake() -> FakeMicrosoft:
    return FakeMicrosoft()


@pytest.fixture
async def make(fake: FakeMicrosoft, anyio_backend: str) -> AsyncIterator[Make]:
    authenticators = Authenticators(microsoft.create, PATH, MicrosoftAuthenticator)

    def build(**config: Any) -> MicrosoftAuthenticator:
        return authenticators.build(fake, **{"tenantId": TENANT, **config})

    yield build
    await authenticators.aclose()


async def _sign_in(auth: MicrosoftAuthenticator, fake: FakeMicrosoft, scope: str = SCOPE) -> Any:
    return await sign_in(auth, fake, callback=CALLBACK, scope=scope)


async def _start(auth: MicrosoftAuthenticator) -> str:
    started = await auth.start(
        StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
    )
    return started.url


# -- defaults and overrides -----------------------------------------------------------


async def test_authorize_url_is_the_tenants(make: Make) -> None:
    url = await _start(make())

    assert origin_and_path(url) == (
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize"
    )
    # passport-microsoft drops Backstage's accessType: no access_type, no prompt.
    assert query_of(url) == {
        "client_id": "backstage-client",
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_domain_hint(make: Make) -> None:
    url = await _start(make(domainHint="contoso.com"))
    assert query_of(url)["domain_hint"] == "contoso.com"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"tenantId": None}, "tenantId"),
        ({"tenantId": ""}, "tenantId"),
        ({"skipUserProfile": "maybe"}, "skipUserProfile"),
    ],
)
async def test_bad_config(config: dict[str, Any], key: str) -> None:
    raw = {"clientId": "a", "clientSecret": "b", "tenantId": TENANT, **config}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError, match=rf"{PATH}\.{key}"):
        microsoft.create(raw, PATH, ProviderDeps(FakeClock(), True))


async def test_scopes_default_union(make: Make) -> None:
    auth = make(additionalScopes=["Calendars.Read"])
    assert auth.persist_scopes is False
    assert auth.transform_scopes(
        ["User.Read"], ["ignored"], auth.required_scopes, auth.additional_scopes
    ) == [
        "User.Read",
        "ignored",
        "email",
        "openid",
        "offline_access",
        "user.read",
        "Calendars.Read",
    ]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ([RESOURCE_SCOPE], [RESOURCE_SCOPE, "offline_access"]),
        ([RESOURCE_SCOPE, "offline_access"], [RESOURCE_SCOPE, "offline_access"]),
        (["api://x/.default", "openid"], ["api://x/.default", "openid", "offline_access"]),
    ],
)
async def test_a_resource_scope_is_asked_for_alone(
    make: Make, requested: list[str], expected: list[str]
) -> None:
    auth = make(additionalScopes="Calendars.Read")
    assert (
        auth.transform_scopes(requested, ["openid"], auth.required_scopes, auth.additional_scopes)
        == expected
    )


# -- the code exchange and the profile ---------------------------------------------------


async def test_code_exchange_and_graph_profile_with_photo(make: Make, fake: FakeMicrosoft) -> None:
    result = await _sign_in(make(), fake)

    token = fake.last_request_to("token")
    assert token.form["grant_type"] == "authorization_code"
    assert token.form["code_verifier"] == SECRETS.code_verifier
    assert token.form["client_id"] == fake.client_id
    assert token.form["client_secret"] == fake.client_secret
    assert result.session.refresh_token is not None
    assert result.session.id_token is not None
    assert result.session.expires_in_seconds == 3599
    assert result.profile == ADELE
    assert result.sign_in_facts == {"user_id": OBJECT_ID}
    assert fake.last_request_to("photo").bearer == result.session.access_token


@pytest.mark.parametrize("mode", ["no photo", "5xx", "timeout", "network", "401"])
async def test_a_failing_photo_does_not_fail_sign_in(
    make: Make, fake: FakeMicrosoft, mode: str
) -> None:
    if mode == "no photo":
        fake.photo = None
    else:
        fake.fail("photo", mode)
    result = await _sign_in(make(), fake)
    assert result.profile == ProfileInfo(email="AdeleV@contoso.com", display_name="Adele Vance")


async def test_a_user_without_mail_gets_the_id_token_email(make: Make, fake: FakeMicrosoft) -> None:
    fake.user = graph_user(mail=None, displayName=None)
    result = await _sign_in(make(), fake)

    # passport: displayName ?? id, so the ID token only fills the email.
    assert result.profile == ProfileInfo(
        email="adele.from.id.token@contoso.com", display_name=OBJECT_ID, picture=PHOTO_URL
    )


async def test_skip_user_profile_reads_only_the_id_token(make: Make, fake: FakeMicrosoft) -> None:
    result = await _sign_in(make(skipUserProfile=True), fake)

    assert fake.requests_to("profile") == fake.requests_to("photo") == []
    assert result.profile == ProfileInfo(
        email="adele.from.id.token@contoso.com", display_name="Adele (ID token)"
    )
    assert result.sign_in_facts == {}


async def test_a_resource_token_reads_graph_through_another_refresh_grant(
    make: Make, fake: FakeMicrosoft
) -> None:
    auth = make()
    scope = " ".join(auth.transform_scopes([RESOURCE_SCOPE], [], auth.required_scopes, ()))
    result = await _sign_in(auth, fake, scope=scope)

    grants = [r.form for r in fake.requests_to("token")]
    assert [g["grant_type"] for g in grants] == ["authorization_code", "refresh_token"]
    assert grants[1]["scope"] == "openid email User.Read offline_access"
    assert grants[1]["refresh_token"] == result.session.refresh_token
    # The session keeps the token it asked for; Graph saw the other one.
    assert fake.access_tokens[result.session.access_token] == scope
    assert fake.last_request_to("profile").bearer != result.session.access_token
    assert result.profile == ADELE


async def test_an_undecodable_token_is_left_to_graph(make: Make, fake: FakeMicrosoft) -> None:
    # Personal-account tokens are opaque: Backstage's check fails open, Graph decides.
    assert microsoft.reads_graph("EwB4A8l6BAAUbDba3x2OMJElkF7gJ4z") is True
    assert microsoft.reads_graph(fake_jwt({"aud": "api://backend", "scp": "User.Read"})) is False
    assert (
        microsoft.reads_graph(fake_jwt({"aud": microsoft.GRAPH_APP_ID, "scp": "Mail.Read"}))
        is False
    )
    assert microsoft.reads_graph(
        fake_jwt({"aud": microsoft.GRAPH_APP_ID, "scp": "openid User.Read"})
    )


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh(make: Make, fake: FakeMicrosoft) -> None:
    auth = make()
    result = await _sign_in(auth, fake)

    refreshed = await auth.refresh(
        RefreshInput(refresh_token=result.session.refresh_token, scope=SCOPE)
    )

    grant = fake.last_request_to("token").form
    assert grant["grant_type"] == "refresh_token"
    assert grant["scope"] == SCOPE
    assert refreshed.session.refresh_token not in (None, result.session.refresh_token)
    assert refreshed.profile == ADELE


async def test_refresh_with_an_unknown_token(make: Make) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_grant"):
        await make().refresh(RefreshInput(refresh_token="0.AAAA-expired", scope=SCOPE))


async def test_no_logout_hook(make: Make, fake: FakeMicrosoft) -> None:
    assert await make().logout(LogoutInput(refresh_token="r")) == LogoutResult()
    assert fake.requests == []


# -- failures ----------------------------------------------------------------------------------


async def test_consent_declined_is_a_rejection(make: Make) -> None:
    description = "AADSTS65004: User declined to consent to access the app."
    with pytest.raises(BackstageError) as info:
        await make().authenticate(
            AuthenticateInput(
                params={"error": "access_denied", "error_description": description},
                callback_url=CALLBACK,
                secrets=SECRETS,
            )
        )
    assert info.value.message == f"Authentication rejected, {description}"


@pytest.mark.parametrize("mode", ["5xx", "timeout", "garbage"])
async def test_token_endpoint_outage(make: Make, fake: FakeMicrosoft, mode: str) -> None:
    auth = make()
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await _sign_in(auth, fake)
    assert info.value.status_code == 503


@pytest.mark.parametrize("mode", ["5xx", "timeout", "401"])
async def test_graph_me_failure_fails_sign_in(make: Make, fake: FakeMicrosoft, mode: str) -> None:
    fake.fail("profile", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch user profile"):
        await _sign_in(make(), fake)


# -- sign-in resolvers -----------------------------------------------------------------------

ADELE_USER = CatalogUser(
    ref="user:default/adelev",
    annotations={
        "microsoft.com/email": "adelev@contoso.com",
        "graph.microsoft.com/user-id": OBJECT_ID,
    },
)


async def test_email_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolver = MICROSOFT_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    ctx = resolver_context([ADELE_USER])
    identity = await resolver(SignInInfo("microsoft", ADELE), ctx)
    assert identity.user_entity_ref == "user:default/adelev"
    with pytest.raises(BackstageError, match="^Microsoft profile contained no email$"):
        await resolver(SignInInfo("microsoft", ProfileInfo()), ctx)


async def test_user_id_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolver = MICROSOFT_RESOLVERS["userIdMatchingUserEntityAnnotation"]({})
    ctx = resolver_context([ADELE_USER])
    identity = await resolver(SignInInfo("microsoft", ADELE, {"user_id": OBJECT_ID}), ctx)
    assert identity.user_entity_ref == "user:default/adelev"
    with pytest.raises(NotFoundError):
        await resolver(SignInInfo("microsoft", ADELE, {"user_id": "someone-else"}), ctx)
    # skipUserProfile leaves no id.
    with pytest.raises(BackstageError, match="^Microsoft profile contained no id$"):
        await resolver(SignInInfo("microsoft", ADELE), ctx)


async def test_an_unverified_id_token_email_matches_no_catalog_user(
    make: Make, fake: FakeMicrosoft
) -> None:
    # Issue 15, item 11 (nOAuth): without a Graph mail, the address comes from the ID token,
    # which here says it is not verified; the e-mail resolvers refuse it.
    fake.user = graph_user(mail=None)
    fake.id_token_claims = {"email_verified": False}
    result = await _sign_in(make(), fake)
    assert result.sign_in_facts["email_verified"] is False
    info = SignInInfo("microsoft", result.profile, result.sign_in_facts)
    adele = CatalogUser(
        ref="user:default/adele",
        email="adele.from.id.token@contoso.com",
        annotations={"microsoft.com/email": "adele.from.id.token@contoso.com"},
    )
    resolver = MICROSOFT_RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    with pytest.raises(BackstageError, match="email is not verified$"):
        await resolver(info, resolver_context([adele]))
    fake.id_token_claims = {"email_verified": True}
    verified = await _sign_in(make(), fake)
    info = SignInInfo("microsoft", verified.profile, verified.sign_in_facts)
    assert (await resolver(info, resolver_context([adele]))).user_entity_ref == adele.ref
