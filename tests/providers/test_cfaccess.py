"""The ``cfaccess`` proxy provider against local Cloudflare Access endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, ServiceUnavailableError
from app.identity.resolvers import COMMON_RESOLVERS
from app.identity.types import ProfileInfo
from app.providers import cfaccess
from app.providers.cfaccess import CloudflareAccessAuthenticator
from app.providers.jwt_verify import CLOCK_SKEW_SECONDS
from app.providers.registry import REGISTRY
from tests.fakes.proxy_keys import CF_AUDIENCE, CF_ISSUER, DELETE, TEAM, ProxyKeyServer
from tests.proxy.helpers import deps, proxy_request

pytestmark = pytest.mark.anyio

PATH = "auth.providers.cfaccess"
HEADER = "cf-access-jwt-assertion"
COOKIE = "CF_Authorization"
CONFIG: dict[str, Any] = {
    "teamName": TEAM,
    "audience": CF_AUDIENCE,
    "serviceTokens": [{"token": "ci-bot.access", "subject": "ci-bot@example.com"}],
}


@pytest.fixture
def server() -> ProxyKeyServer:
    return ProxyKeyServer()


async def _make(server: ProxyKeyServer, **overrides: Any) -> CloudflareAccessAuthenticator:
    authenticator = cfaccess.create({**CONFIG, **overrides}, PATH, deps(server)).authenticator
    assert isinstance(authenticator, CloudflareAccessAuthenticator)
    return authenticator


@pytest.fixture
async def cf(
    server: ProxyKeyServer, anyio_backend: str
) -> AsyncIterator[CloudflareAccessAuthenticator]:
    authenticator = await _make(server)
    yield authenticator
    await authenticator.aclose()


async def _refused(cf: CloudflareAccessAuthenticator, token: str, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as info:
        await cf.authenticate(proxy_request({HEADER: token}))
    assert info.value.status_code == 401


# -- success ----------------------------------------------------------------------------


async def test_a_valid_cookie_token_signs_in(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token()
    result = await cf.authenticate(proxy_request(cookies={COOKIE: token}))

    assert result.profile == ProfileInfo(email="jane@example.com", display_name="Jane Doe")
    info = result.provider_info
    assert info is not None
    assert list(info) == ["claims", "cfIdentity", "expiresInSeconds", "token"]
    assert info["claims"]["sub"] == "7335d417-61da-459d-899c-0a01c76a2f94"
    assert info["cfIdentity"]["groups"][0]["name"] == "Engineering"
    assert info["expiresInSeconds"] == 3600
    assert info["token"] == token
    assert "token" not in result.sign_in_facts
    assert result.sign_in_facts["cfIdentity"]["email"] == "jane@example.com"


async def test_the_identity_is_fetched_with_the_token_as_cookie_and_header(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token()
    await cf.authenticate(proxy_request({HEADER: token}))
    (identity_request,) = server.requests_to("cf-identity")
    assert str(identity_request.url) == (
        f"https://{TEAM}.cloudflareaccess.com/cdn-cgi/access/get-identity"
    )
    assert identity_request.headers["cookie"] == f"{COOKIE}={token}"
    assert identity_request.headers[HEADER] == token
    (certs,) = server.requests_to("cf-certs")
    assert str(certs.url) == f"https://{TEAM}.cloudflareaccess.com/cdn-cgi/access/certs"


async def test_the_header_wins_over_the_cookie(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    header_token = server.cf_token()
    cookie_token = "garbage"
    result = await cf.authenticate(proxy_request({HEADER: header_token}, {COOKIE: cookie_token}))
    assert result.provider_info is not None
    assert result.provider_info["token"] == header_token


async def test_configured_header_and_cookie_names(server: ProxyKeyServer) -> None:
    cf = await _make(server, jwtHeaderName="X-Access-Token", authorizationCookieName="cfauth")
    token = server.cf_token()
    await cf.authenticate(proxy_request({"x-access-token": token}))
    await cf.authenticate(proxy_request(cookies={"cfauth": token}))
    assert server.requests_to("cf-identity")[-1].headers["cookie"] == f"cfauth={token}"
    with pytest.raises(AuthenticationError) as info:
        await cf.authenticate(proxy_request({HEADER: token}, {COOKIE: token}))
    assert info.value.message == "Missing x-access-token and cfauth from Cloudflare Access"
    await cf.aclose()


async def test_a_missing_token_is_401_naming_header_and_cookie(
    cf: CloudflareAccessAuthenticator,
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await cf.authenticate(proxy_request())
    assert info.value.message == (
        "Missing cf-access-jwt-assertion and CF_Authorization from Cloudflare Access"
    )


# -- refusals -----------------------------------------------------------------------------


async def test_a_forged_token_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    await _refused(cf, server.cf_token(key=server.foreign_rsa), "invalid signature")
    assert server.requests_to("cf-identity") == []


async def test_an_expired_token_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token()
    server.clock.advance(3600 + CLOCK_SKEW_SECONDS)
    await _refused(cf, token, "Cloudflare Access JWT has expired")


async def test_a_wrong_audience_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    await _refused(cf, server.cf_token(claims={"aud": ["another-app"]}), "wrong audience")


async def test_another_teams_token_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token(claims={"iss": "https://evil.cloudflareaccess.com"})
    await _refused(cf, token, "wrong issuer 'https://evil.cloudflareaccess.com'")


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256", "PS256"])
async def test_only_rs256_is_accepted(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer, alg: str
) -> None:
    await _refused(cf, server.cf_token(header={"alg": alg}), f"algorithm '{alg}'; only RS256")


async def test_without_audience_any_application_of_the_team_is_accepted(
    server: ProxyKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    cf = await _make(server, audience=None)
    assert "auth.providers.cfaccess.audience is not set" in caplog.text
    result = await cf.authenticate(
        proxy_request({HEADER: server.cf_token(claims={"aud": ["other"]})})
    )
    await cf.aclose()
    assert result.profile.email == "jane@example.com"


async def test_several_audiences_may_be_configured(server: ProxyKeyServer) -> None:
    cf = await _make(server, audience=["first", CF_AUDIENCE])
    result = await cf.authenticate(proxy_request({HEADER: server.cf_token()}))
    assert result.profile.email == "jane@example.com"
    # ... and a token for neither of them is still refused.
    with pytest.raises(AuthenticationError, match="wrong audience"):
        await cf.authenticate(proxy_request({HEADER: server.cf_token(claims={"aud": ["x"]})}))
    await cf.aclose()


# -- service tokens -----------------------------------------------------------------------


async def test_a_permitted_service_token_signs_in_as_its_subject(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    result = await cf.authenticate(
        proxy_request({HEADER: server.cf_token(service_token="ci-bot.access")})
    )
    assert result.profile == ProfileInfo(email="ci-bot@example.com", display_name="Bot")
    assert result.provider_info is not None
    assert result.provider_info["cfIdentity"] == {
        "id": "ci-bot.access",
        "name": "Bot",
        "email": "ci-bot@example.com",
        "groups": [],
    }
    assert server.requests_to("cf-identity") == []


async def test_another_service_token_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token(service_token="someone-else.access")
    await _refused(cf, token, "someone-else.access is not a permitted Service Token.")


async def test_a_token_without_sub_or_common_name_is_refused(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.cf_token(claims={"sub": DELETE})
    await _refused(cf, token, "Missing both sub and common_name")


async def test_a_user_whose_sub_equals_a_service_token_id_is_still_a_user(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    result = await cf.authenticate(
        proxy_request({HEADER: server.cf_token(claims={"sub": "ci-bot.access"})})
    )
    assert result.profile.email == "jane@example.com"


# -- identity endpoint --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["404", "403"])
async def test_an_identity_refused_by_access_is_401(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer, mode: str
) -> None:
    server.fail("cf-identity", mode)
    await _refused(cf, server.cf_token(), "Failed to populate access identity information")


@pytest.mark.parametrize("mode", ["5xx", "network", "garbage"])
async def test_a_failing_identity_endpoint_is_503(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer, mode: str
) -> None:
    server.fail("cf-identity", mode)
    with pytest.raises(ServiceUnavailableError, match="Failed to populate access identity"):
        await cf.authenticate(proxy_request({HEADER: server.cf_token()}))


async def test_failing_certs_are_503(
    cf: CloudflareAccessAuthenticator, server: ProxyKeyServer
) -> None:
    server.fail("cf-certs", "5xx")
    with pytest.raises(ServiceUnavailableError, match="Cloudflare Access signing keys"):
        await cf.authenticate(proxy_request({HEADER: server.cf_token()}))


async def test_the_endpoints_are_overridable(server: ProxyKeyServer) -> None:
    cf = CloudflareAccessAuthenticator(
        team_name=TEAM,
        clock=server.clock,
        domain=f"https://{TEAM}.cloudflareaccess.com/",
        transport=deps(server).transport,
    )
    assert cf.issuer == CF_ISSUER
    assert cf.keys.url == f"https://{TEAM}.cloudflareaccess.com/cdn-cgi/access/certs"
    await cf.authenticate(proxy_request({HEADER: server.cf_token()}))
    await cf.aclose()


# -- config and resolvers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "teamName"),
        ({"teamName": "evil.com/x"}, "teamName"),
        ({"teamName": "-bad"}, "teamName"),
        ({"teamName": TEAM, "serviceTokens": [{"token": "x"}]}, "serviceTokens.0.subject"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, Any], key: str, server: ProxyKeyServer) -> None:
    with pytest.raises(ConfigError, match=rf"auth\.providers\.cfaccess\.{key}"):
        cfaccess.create(raw, PATH, deps(server))


def test_the_common_resolvers_are_what_backstage_ends_up_with() -> None:
    assert REGISTRY["cfaccess"].resolvers == COMMON_RESOLVERS
