"""The ``oidc`` provider against a fake OpenID provider.

Backstage: ``plugins/auth-backend-module-oidc-provider/src/authenticator.ts``
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, BackstageError, ServiceUnavailableError
from app.identity.types import ProfileInfo
from app.providers import oidc
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.oidc import JWKS_RELOAD_INTERVAL_SECONDS, OidcAuthenticator
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import DELETE, FakeIdP, s256
from tests.providers.helpers import (
    SCOPE,
    SECRETS,
    STATE,
    callback,
    deps,
    origin_and_path,
    query_of,
    sign_in,
)

pytestmark = pytest.mark.anyio

PATH = "auth.providers.oidc.development"
CALLBACK = callback("oidc")

MakeOidc = Callable[..., OidcAuthenticator]


@pytest.fixture
async def make_oidc(fake: FakeIdP, clock: FakeClock, anyio_backend: str) -> AsyncIterator[MakeOidc]:
    created: list[OidcAuthenticator] = []

    def make(**config: Any) -> OidcAuthenticator:
        raw = {
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "metadataUrl": fake.metadata_url,
            **config,
        }
        authenticator = oidc.create(raw, PATH, deps(fake, clock)).authenticator
        assert isinstance(authenticator, OidcAuthenticator)
        created.append(authenticator)
        return authenticator

    yield make
    for authenticator in created:
        await authenticator.aclose()


async def _start(auth: OidcAuthenticator, scope: str = SCOPE) -> str:
    result = await auth.start(
        StartInput(state=STATE, scope=scope, callback_url=CALLBACK, secrets=SECRETS)
    )
    assert result.status == 302
    return result.url


async def _callback(auth: OidcAuthenticator, **params: str) -> Any:
    return await auth.authenticate(
        AuthenticateInput(params=params, callback_url=CALLBACK, secrets=SECRETS)
    )


# -- /start: the authorize URL ---------------------------------------------------------


async def test_authorize_url_is_exactly_the_openid_client_request(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    url = await _start(make_oidc())

    assert origin_and_path(url) == fake.url("authorize")
    assert query_of(url) == {
        "client_id": fake.client_id,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": SCOPE,
        "state": STATE,
        "nonce": SECRETS.oidc_nonce,
        "prompt": "none",
        "code_challenge": s256(SECRETS.code_verifier),
        "code_challenge_method": "S256",
    }


async def test_authorize_url_origin_and_path_come_from_discovery(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.discovery_overrides["authorization_endpoint"] = "https://login.example.test/oauth/auth"
    url = await _start(make_oidc())
    assert origin_and_path(url) == "https://login.example.test/oauth/auth"


async def test_prompt_auto_is_omitted(make_oidc: MakeOidc) -> None:
    url = await _start(make_oidc(prompt="auto"))
    assert "prompt" not in query_of(url)


async def test_configured_prompt_is_sent(make_oidc: MakeOidc) -> None:
    url = await _start(make_oidc(prompt="consent"))
    assert query_of(url)["prompt"] == "consent"


async def test_start_url_search_params_are_added_but_cannot_override_standard_ones(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    hostile = {
        "client_id": "evil",
        "response_type": "token",
        "redirect_uri": "https://evil.example/cb",
        "scope": "evil",
        "state": "evil",
        "nonce": "evil",
        "code_challenge": "evil",
        "code_challenge_method": "plain",
    }
    url = await _start(
        make_oidc(startUrlSearchParams={"audience": "https://api.example", **hostile})
    )
    query = query_of(url)

    assert query["audience"] == "https://api.example"
    assert query["client_id"] == fake.client_id
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == SCOPE
    assert query["state"] == STATE
    assert query["nonce"] == SECRETS.oidc_nonce
    assert query["code_challenge"] == s256(SECRETS.code_verifier)
    assert query["code_challenge_method"] == "S256"


# -- authenticate: the happy path ------------------------------------------------------


async def test_authenticate_exchanges_the_code_with_basic_auth_and_pkce(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.token_endpoint_auth_method = "client_secret_basic"
    result = await sign_in(make_oidc(), fake)

    token_request = fake.last_request_to("token")
    assert token_request.method == "POST"
    assert token_request.basic_auth == (fake.client_id, fake.client_secret)
    assert "client_secret" not in token_request.form
    assert token_request.form["grant_type"] == "authorization_code"
    assert token_request.form["redirect_uri"] == CALLBACK
    assert token_request.form["code_verifier"] == SECRETS.code_verifier

    session = result.session
    assert session.access_token.startswith("at-")
    assert session.id_token
    assert session.refresh_token
    assert session.scope == SCOPE
    assert session.expires_in_seconds == fake.access_token_lifetime
    # The userinfo call carries the access token.
    assert fake.last_request_to("userinfo").bearer == session.access_token


async def test_authenticate_with_client_secret_post(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.token_endpoint_auth_method = "client_secret_post"
    await sign_in(make_oidc(tokenEndpointAuthMethod="client_secret_post"), fake)

    token_request = fake.last_request_to("token")
    assert "authorization" not in token_request.headers
    assert token_request.form["client_id"] == fake.client_id
    assert token_request.form["client_secret"] == fake.client_secret


async def test_profile_comes_from_userinfo(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.userinfo_claims.update(name="Jane From Userinfo", email="jane@userinfo.example")
    result = await sign_in(make_oidc(), fake)

    assert result.profile == ProfileInfo(
        email="jane@userinfo.example",
        display_name="Jane From Userinfo",
        picture="https://idp.example.test/jane.png",
    )


@pytest.mark.parametrize("email_verified", [False, DELETE, "true", 1])
async def test_email_is_only_taken_when_verified_is_true(
    make_oidc: MakeOidc, fake: FakeIdP, email_verified: Any
) -> None:
    fake.userinfo_claims["email_verified"] = email_verified
    result = await sign_in(make_oidc(), fake)

    assert result.profile.email is None
    assert result.profile.display_name == "Jane Doe"
    assert result.profile.picture == "https://idp.example.test/jane.png"


async def test_sign_in_facts_contain_the_claims(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    result = await sign_in(make_oidc(), fake)

    claims = result.sign_in_facts["claims"]
    assert claims["sub"] == fake.subject
    assert claims["iss"] == fake.issuer
    assert claims["aud"] == fake.client_id
    assert claims["nonce"] == SECRETS.oidc_nonce
    assert claims["preferred_username"] == "jane"
    assert claims["email"] == "jane.doe@example.com"


# -- authenticate: ID token verification (S15) -----------------------------------------

NOW = int(FakeClock().now())


def _claims(**overrides: Any) -> Callable[[FakeIdP], None]:
    def apply(fake: FakeIdP) -> None:
        fake.id_token_claims.update(overrides)

    return apply


def _two_audiences(azp: Any) -> Callable[[FakeIdP], None]:
    def apply(fake: FakeIdP) -> None:
        fake.id_token_claims.update(aud=[fake.client_id, "another-client"], azp=azp)

    return apply


def _signing(mode: Any, *, advertise: str | None = None) -> Callable[[FakeIdP], None]:
    def apply(fake: FakeIdP) -> None:
        fake.id_token_signing = mode
        if advertise is not None:
            # Even an IdP that advertises the algorithm does not get it accepted.
            fake.discovery_overrides["id_token_signing_alg_values_supported"] = [
                "RS256",
                advertise,
            ]

    return apply


def _header(**members: Any) -> Callable[[FakeIdP], None]:
    def apply(fake: FakeIdP) -> None:
        fake.id_token_header.update(members)

    return apply


def _embedded_jwk(fake: FakeIdP) -> None:
    # Signed by the attacker's key, which travels in the header under the real kid.
    fake.id_token_signing = "foreign-key"
    fake.embed_foreign_jwk = True
    fake.id_token_header["kid"] = fake.kid


def _embedded_ec_jwk(fake: FakeIdP) -> None:
    # The same with a small EC key (an RSA JWK is too big for a header anyway), with ES256
    # advertised, so the only thing wrong is where the key comes from.
    fake.discovery_overrides["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
    fake.id_token_signing = "foreign-ec-key"
    fake.embed_foreign_jwk = True
    fake.id_token_header["kid"] = fake.kid


def _foreign_key_real_kid(fake: FakeIdP) -> None:
    fake.id_token_signing = "foreign-key"
    fake.id_token_header["kid"] = fake.kid


ID_TOKEN_FAILURES: dict[str, Callable[[FakeIdP], None]] = {
    "wrong iss": _claims(iss="https://evil.example.test"),
    "missing iss": _claims(iss=DELETE),
    "wrong aud": _claims(aud="another-client"),
    "aud list without us": _claims(aud=["a", "b"]),
    "missing aud": _claims(aud=DELETE),
    "expired": _claims(exp=NOW - 120),
    "missing exp": _claims(exp=DELETE),
    "iat in the future": _claims(iat=NOW + 3600),
    "missing iat": _claims(iat=DELETE),
    "wrong nonce": _claims(nonce="another-nonce"),
    "missing nonce": _claims(nonce=DELETE),
    "missing sub": _claims(sub=DELETE),
    "several audiences, no azp": _two_audiences(DELETE),
    "several audiences, other azp": _two_audiences("another-client"),
    "alg none": _signing("none"),
    "alg none advertised": _signing("none", advertise="none"),
    "HS256 with the client secret": _signing("hs256-client-secret"),
    "HS256 advertised": _signing("hs256-client-secret", advertise="HS256"),
    "unknown crit header": _header(crit=["urn:example:unknown"], **{"urn:example:unknown": 1}),
    "RSA jwk embedded in the header": _embedded_jwk,
    "EC jwk embedded in the header": _embedded_ec_jwk,
    "jku in the header": _header(jku="https://evil.example.test/jwks"),
    "signed by a key not in the JWKS": _foreign_key_real_kid,
    "unknown kid": _header(kid="never-published"),
}


@pytest.mark.parametrize("tamper", ID_TOKEN_FAILURES.values(), ids=ID_TOKEN_FAILURES.keys())
async def test_id_token_failures_are_authentication_failures(
    make_oidc: MakeOidc, fake: FakeIdP, tamper: Callable[[FakeIdP], None]
) -> None:
    tamper(fake)
    with pytest.raises(BackstageError) as info:
        await sign_in(make_oidc(), fake)

    assert not isinstance(info.value, UpstreamError)
    assert info.value.message.startswith("Authentication failed"), info.value.message
    # Nothing from the IdP is trusted before the ID token is: no userinfo call.
    assert fake.requests_to("userinfo") == []


ID_TOKEN_ACCEPTED: dict[str, Callable[[FakeIdP], None]] = {
    "expired within the clock skew": _claims(exp=NOW - 30),
    "iat slightly ahead, within the skew": _claims(iat=NOW + 30),
    "several audiences, our azp": _two_audiences("backstage-client"),
    "aud list with only us": _claims(aud=["backstage-client"]),
    "azp equal to us": _claims(azp="backstage-client"),
}


@pytest.mark.parametrize("tamper", ID_TOKEN_ACCEPTED.values(), ids=ID_TOKEN_ACCEPTED.keys())
async def test_id_token_edge_cases_that_are_valid(
    make_oidc: MakeOidc, fake: FakeIdP, tamper: Callable[[FakeIdP], None]
) -> None:
    assert fake.client_id == "backstage-client"
    tamper(fake)
    result = await sign_in(make_oidc(), fake)
    assert result.session.access_token


async def test_azp_of_another_client_is_rejected_with_a_single_audience(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.id_token_claims["azp"] = "another-client"
    with pytest.raises(BackstageError, match="^Authentication failed"):
        await sign_in(make_oidc(), fake)


async def test_configured_id_token_algorithm_is_enforced(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    with pytest.raises(
        BackstageError, match="^Authentication failed, the ID token uses the algorithm"
    ):
        await sign_in(make_oidc(tokenSignedResponseAlg="ES256"), fake)


async def test_token_response_without_id_token_is_refused(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    # The fake only issues ID tokens for the openid scope.
    with pytest.raises(BackstageError, match="^Authentication failed, .*no id_token"):
        await sign_in(make_oidc(), fake, scope="profile email")


async def test_userinfo_for_another_subject_is_rejected(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.userinfo_claims["sub"] = "someone-else"
    with pytest.raises(BackstageError, match="sub does not match"):
        await sign_in(make_oidc(), fake)


async def test_pkce_verifier_mismatch_is_an_authentication_error(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    auth = make_oidc()
    code = fake.authorize(await _start(auth))
    other = type(SECRETS)(code_verifier="x" * 43, oidc_nonce=SECRETS.oidc_nonce)
    with pytest.raises(AuthenticationError, match="invalid_grant"):
        await auth.authenticate(
            AuthenticateInput(params={"code": code}, callback_url=CALLBACK, secrets=other)
        )


# -- authenticate: errors on the callback and from the token endpoint ------------------


async def test_access_denied_is_a_rejection(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    with pytest.raises(BackstageError) as info:
        await _callback(make_oidc(), error="access_denied", error_description="nope")
    assert info.value.message == "Authentication rejected, access_denied (nope)"
    assert fake.requests_to("token") == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("server_error", "Authentication failed, server_error (boom)"),
        ("invalid_request", "Authentication failed, invalid_request (boom)"),
        ("invalid_scope", "Authentication failed, invalid_scope (boom)"),
        ("login_required", "Authentication rejected, login_required (boom)"),
    ],
)
async def test_other_callback_errors(make_oidc: MakeOidc, error: str, expected: str) -> None:
    with pytest.raises(BackstageError) as info:
        await _callback(make_oidc(), error=error, error_description="boom")
    assert info.value.message == expected


async def test_callback_error_without_description(make_oidc: MakeOidc) -> None:
    with pytest.raises(BackstageError) as info:
        await _callback(make_oidc(), error="server_error")
    assert info.value.message == "Authentication failed, server_error"


async def test_callback_without_code(make_oidc: MakeOidc) -> None:
    with pytest.raises(BackstageError, match="^Authentication failed, missing authorization code"):
        await _callback(make_oidc(), state=STATE)


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("5xx", "the identity provider answered 503"),
        ("garbage", "the identity provider answered garbage"),
        ("timeout", "the identity provider did not answer within 10 seconds"),
        ("network", "could not reach the identity provider (fake IdP unreachable)"),
        ("invalid_client", "invalid_client (fake IdP says invalid_client)"),
    ],
)
async def test_token_endpoint_failures_are_upstream_errors(
    make_oidc: MakeOidc, fake: FakeIdP, mode: str, cause: str
) -> None:
    fake.fail("token", mode)
    with pytest.raises(UpstreamError) as info:
        await sign_in(make_oidc(), fake)

    assert isinstance(info.value, ServiceUnavailableError)
    assert info.value.status_code == 503
    assert info.value.message == (f"Authentication failed, Failed to obtain access token, {cause}")


async def test_configured_timeout_is_named(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc(timeout={"seconds": 3})
    await _start(auth)
    fake.fail("token", "timeout")
    with pytest.raises(UpstreamError, match="did not answer within 3 seconds"):
        await sign_in(auth, fake)


async def test_invalid_grant_is_an_authentication_error(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.fail("token", "invalid_grant")
    with pytest.raises(AuthenticationError) as info:
        await sign_in(make_oidc(), fake)
    assert info.value.message.startswith("Authentication failed, Failed to obtain access token")
    assert "invalid_grant" in info.value.message


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("5xx", "answered 503"),
        ("garbage", "Failed to fetch user profile"),
        ("timeout", "did not answer within 10 seconds"),
        ("network", "Failed to fetch user profile"),
    ],
)
async def test_userinfo_failures_are_upstream_errors(
    make_oidc: MakeOidc, fake: FakeIdP, mode: str, cause: str
) -> None:
    fake.fail("userinfo", mode)
    with pytest.raises(UpstreamError) as info:
        await sign_in(make_oidc(), fake)
    assert cause in info.value.message


# -- refresh ---------------------------------------------------------------------------


async def test_refresh_sends_no_scope_and_keeps_the_refresh_token(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    auth = make_oidc()
    signed_in = await sign_in(auth, fake)
    old = signed_in.session.refresh_token
    assert old is not None

    refreshed = await auth.refresh(RefreshInput(refresh_token=old, scope=SCOPE))

    request = fake.last_request_to("token")
    assert request.form["grant_type"] == "refresh_token"
    assert request.form["refresh_token"] == old
    assert "scope" not in request.form
    assert request.basic_auth == (fake.client_id, fake.client_secret)
    assert refreshed.session.refresh_token == old
    assert refreshed.session.access_token != signed_in.session.access_token
    assert refreshed.profile.email == "jane.doe@example.com"
    assert refreshed.sign_in_facts["claims"]["sub"] == fake.subject


async def test_refresh_with_rotation_returns_the_new_token(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.rotate_refresh_tokens = True
    auth = make_oidc()
    old = (await sign_in(auth, fake)).session.refresh_token
    assert old is not None

    refreshed = await auth.refresh(RefreshInput(refresh_token=old, scope=SCOPE))
    assert refreshed.session.refresh_token not in (None, old)

    # The IdP now treats the old token as reused.
    with pytest.raises(AuthenticationError, match="invalid_grant"):
        await auth.refresh(RefreshInput(refresh_token=old, scope=SCOPE))


async def test_refresh_without_id_token_uses_userinfo(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.id_token_on_refresh = False
    auth = make_oidc()
    rt = fake.issue_refresh_token(SCOPE)
    refreshed = await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))
    assert refreshed.session.id_token is None
    assert refreshed.profile.display_name == "Jane Doe"


async def test_refreshed_id_token_is_verified(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc()
    rt = fake.issue_refresh_token(SCOPE)
    fake.id_token_claims["iss"] = "https://evil.example.test"
    with pytest.raises(BackstageError, match="^Authentication failed"):
        await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))


@pytest.mark.parametrize("mode", ["5xx", "garbage", "timeout", "network"])
async def test_refresh_upstream_failures(make_oidc: MakeOidc, fake: FakeIdP, mode: str) -> None:
    auth = make_oidc()
    rt = fake.issue_refresh_token(SCOPE)
    fake.fail("token", mode)
    with pytest.raises(UpstreamError, match="^Failed to refresh access token, "):
        await auth.refresh(RefreshInput(refresh_token=rt, scope=SCOPE))


async def test_refresh_with_an_unknown_token_is_an_authentication_error(
    make_oidc: MakeOidc,
) -> None:
    with pytest.raises(AuthenticationError, match="^Failed to refresh access token, invalid_gr"):
        await make_oidc().refresh(RefreshInput(refresh_token="rt-unknown", scope=SCOPE))


# -- logout ----------------------------------------------------------------------------


async def test_logout_revokes_the_refresh_token(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc()
    rt = fake.issue_refresh_token()

    result = await auth.logout(LogoutInput(refresh_token=rt))

    # Backstage's sign-out by default: no logoutUrl, though the IdP has end_session.
    assert fake.discovery_document()["end_session_endpoint"] == fake.url("end_session")
    assert result == LogoutResult()
    request = fake.last_request_to("revocation")
    assert request.method == "POST"
    assert request.form["token"] == rt
    assert request.form["token_type_hint"] == "refresh_token"
    assert request.basic_auth == (fake.client_id, fake.client_secret)
    assert fake.revoked == [rt]


async def test_logout_uses_the_configured_client_authentication(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.token_endpoint_auth_method = "client_secret_post"
    auth = make_oidc(tokenEndpointAuthMethod="client_secret_post")
    rt = fake.issue_refresh_token()
    await auth.logout(LogoutInput(refresh_token=rt))

    request = fake.last_request_to("revocation")
    assert request.form.get("client_secret") == fake.client_secret
    assert fake.revoked == [rt]


async def test_logout_without_a_refresh_token_revokes_nothing(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    result = await make_oidc(federatedLogout=True).logout(LogoutInput(refresh_token=None))
    assert result.logout_url is not None
    assert fake.requests_to("revocation") == []


async def test_logout_without_a_revocation_endpoint(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    fake.discovery_overrides["revocation_endpoint"] = DELETE
    auth = make_oidc(federatedLogout=True)
    result = await auth.logout(LogoutInput(refresh_token=fake.issue_refresh_token()))
    assert result.logout_url is not None
    assert fake.requests_to("revocation") == []


@pytest.mark.parametrize("mode", ["5xx", "timeout", "network", "garbage", "invalid_request"])
async def test_revocation_failure_does_not_fail_logout(
    make_oidc: MakeOidc, fake: FakeIdP, mode: str
) -> None:
    auth = make_oidc(federatedLogout=True)
    fake.fail("revocation", mode)
    result = await auth.logout(LogoutInput(refresh_token=fake.issue_refresh_token()))
    assert result.logout_url is not None
    assert len(fake.requests_to("revocation")) == 1


async def test_logout_when_discovery_fails_still_succeeds(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.fail("discovery", "5xx")
    result = await make_oidc().logout(LogoutInput(refresh_token="rt-1"))
    assert result == LogoutResult()


async def test_rp_initiated_logout_url(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    result = await make_oidc(federatedLogout=True).logout(
        LogoutInput(
            refresh_token=fake.issue_refresh_token(),
            id_token="the.id.token",
            post_logout_redirect_uri="http://localhost:3000/signed-out",
        )
    )
    assert result.logout_url is not None
    url = httpx2.URL(result.logout_url)
    assert str(url.copy_with(query=None)) == fake.url("end_session")
    assert dict(url.params) == {
        "client_id": fake.client_id,
        "id_token_hint": "the.id.token",
        "post_logout_redirect_uri": "http://localhost:3000/signed-out",
    }


async def test_no_logout_url_without_an_end_session_endpoint(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.discovery_overrides["end_session_endpoint"] = DELETE
    auth = make_oidc(federatedLogout=True)
    result = await auth.logout(LogoutInput(refresh_token=fake.issue_refresh_token()))
    assert result == LogoutResult()


# -- discovery -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("userinfo_endpoint", "the provider has no userinfo_endpoint"),
        ("jwks_uri", "missing jwks_uri"),
        ("token_endpoint", "missing token_endpoint"),
        ("issuer", "missing issuer"),
    ],
)
async def test_discovery_without_a_required_endpoint(
    make_oidc: MakeOidc, fake: FakeIdP, field: str, message: str
) -> None:
    fake.discovery_overrides[field] = DELETE
    with pytest.raises(UpstreamError) as info:
        await _start(make_oidc())
    assert fake.metadata_url in info.value.message
    assert message in info.value.message


@pytest.mark.parametrize(
    ("mode", "message"),
    [("5xx", "status 503"), ("garbage", "not JSON"), ("timeout", "timed out")],
)
async def test_discovery_failures_are_upstream_errors(
    make_oidc: MakeOidc, fake: FakeIdP, mode: str, message: str
) -> None:
    fake.fail("discovery", mode)
    with pytest.raises(UpstreamError, match=message):
        await _start(make_oidc())


async def test_discovery_is_fetched_once(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc()
    await _start(auth)
    result = await sign_in(auth, fake)
    assert result.session.refresh_token is not None
    await auth.refresh(RefreshInput(refresh_token=result.session.refresh_token, scope=SCOPE))
    await auth.logout(LogoutInput(refresh_token=result.session.refresh_token))
    await _start(auth)

    assert len(fake.requests_to("discovery")) == 1


async def test_discovery_is_retried_after_a_failure(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc()
    fake.fail("discovery", "5xx", times=1)
    with pytest.raises(UpstreamError):
        await _start(auth)

    url = await _start(auth)
    assert origin_and_path(url) == fake.url("authorize")
    assert len(fake.requests_to("discovery")) == 2
    await _start(auth)
    assert len(fake.requests_to("discovery")) == 2


# -- JWKS ------------------------------------------------------------------------------


async def test_discovery_without_algorithms_defaults_to_rs256(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.discovery_overrides["id_token_signing_alg_values_supported"] = DELETE
    assert (await sign_in(make_oidc(), fake)).session.access_token


async def test_token_without_kid_is_verified_with_the_only_key(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    fake.id_token_header["kid"] = DELETE
    assert (await sign_in(make_oidc(), fake)).session.access_token


async def test_token_without_kid_is_refused_when_the_jwks_has_several_keys(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    # OIDC Core 10.1: with several keys in the JWKS the kid is required.
    fake.rotate_key("fake-key-new", keep_old=True)
    fake.id_token_header["kid"] = DELETE
    with pytest.raises(BackstageError, match="^Authentication failed"):
        await sign_in(make_oidc(), fake)


async def test_during_a_rotation_the_kid_selects_the_key(
    make_oidc: MakeOidc, fake: FakeIdP
) -> None:
    auth = make_oidc()
    fake.rotate_key("fake-key-next", keep_old=True)
    assert (await sign_in(auth, fake)).session.access_token
    fake.id_token_header["kid"] = "fake-key-1"
    # Signed by the current key but claiming the old kid: the old key does not verify it.
    with pytest.raises(
        BackstageError, match="^Authentication failed, the ID token has an invalid signature"
    ):
        await sign_in(auth, fake)


async def test_jwks_is_fetched_once_for_many_sign_ins(make_oidc: MakeOidc, fake: FakeIdP) -> None:
    auth = make_oidc()
    for _ in range(3):
        await sign_in(auth, fake)
    assert len(fake.requests_to("jwks")) == 1


async def test_rotated_key_is_found_by_reloading_the_jwks(
    make_oidc: MakeOidc, fake: FakeIdP, clock: FakeClock
) -> None:
    auth = make_oidc()
    await sign_in(auth, fake)
    clock.advance(JWKS_RELOAD_INTERVAL_SECONDS + 1)
    fake.rotate_key("fake-key-2")

    result = await sign_in(auth, fake)

    assert result.session.access_token
    assert len(fake.requests_to("jwks")) == 2


async def test_unknown_kids_do_not_refetch_the_jwks_more_often_than_the_bound(
    make_oidc: MakeOidc, fake: FakeIdP, clock: FakeClock
) -> None:
    auth = make_oidc()
    await sign_in(auth, fake)  # JWKS loaded at t0
    assert len(fake.requests_to("jwks")) == 1
    fake.id_token_header["kid"] = "never-published"

    for _ in range(5):
        clock.advance(JWKS_RELOAD_INTERVAL_SECONDS / 10)
        with pytest.raises(BackstageError, match="^Authentication failed"):
            await sign_in(auth, fake)
    # t0 + 15 s: still inside the reload interval, no refetch at all.
    assert len(fake.requests_to("jwks")) == 1

    clock.advance(JWKS_RELOAD_INTERVAL_SECONDS)
    for _ in range(5):
        with pytest.raises(BackstageError, match="^Authentication failed"):
            await sign_in(auth, fake)
    # One reload for the whole burst.
    assert len(fake.requests_to("jwks")) == 2


async def test_rotation_inside_the_reload_interval_is_picked_up_after_it(
    make_oidc: MakeOidc, fake: FakeIdP, clock: FakeClock
) -> None:
    auth = make_oidc()
    await sign_in(auth, fake)
    fake.rotate_key("fake-key-3")

    with pytest.raises(BackstageError, match="^Authentication failed"):
        await sign_in(auth, fake)
    assert len(fake.requests_to("jwks")) == 1

    clock.advance(JWKS_RELOAD_INTERVAL_SECONDS)
    assert (await sign_in(auth, fake)).session.access_token
    assert len(fake.requests_to("jwks")) == 2


@pytest.mark.parametrize("mode", ["5xx", "garbage", "timeout"])
async def test_jwks_failure_is_an_upstream_error(
    make_oidc: MakeOidc, fake: FakeIdP, mode: str
) -> None:
    fake.fail("jwks", mode)
    with pytest.raises(UpstreamError, match="^Failed to fetch the identity provider's keys"):
        await sign_in(make_oidc(), fake)


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["scope", "scopes"])
def test_scope_key_is_refused(fake: FakeIdP, clock: FakeClock, key: str) -> None:
    raw = {"clientId": "a", "clientSecret": "b", "metadataUrl": fake.metadata_url, key: "x"}
    with pytest.raises(ConfigError, match="use additionalScopes"):
        oidc.create(raw, PATH, deps(fake, clock))


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"metadataUrl": "ftp://idp.example.test/.well-known"}, "metadataUrl"),
        ({"metadataUrl": None}, "metadataUrl"),
        ({"clientId": ""}, "clientId"),
        ({"tokenEndpointAuthMethod": "private_key_jwt"}, "tokenEndpointAuthMethod"),
        ({"tokenSignedResponseAlg": "HS256"}, "tokenSignedResponseAlg"),
    ],
)
def test_invalid_config_names_the_key(
    fake: FakeIdP, clock: FakeClock, override: dict[str, Any], named: str
) -> None:
    raw: dict[str, Any] = {
        "clientId": "a",
        "clientSecret": "b",
        "metadataUrl": fake.metadata_url,
        **override,
    }
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError, match=named):
        oidc.create(raw, PATH, deps(fake, clock))


async def test_federated_logout_is_refused_unless_a_boolean(make_oidc: MakeOidc) -> None:
    with pytest.raises(ConfigError, match="federatedLogout"):
        make_oidc(federatedLogout="sometimes")


def test_check_config_words_for_sign_out() -> None:
    assert oidc.describe_sign_out({}).startswith("federatedLogout: false (")
    assert "set postLogoutRedirectUri" in oidc.describe_sign_out({"federatedLogout": True})
    back = {"federatedLogout": True, "postLogoutRedirectUri": "https://app.example/out"}
    assert "then back to https://app.example/out" in oidc.describe_sign_out(back)
