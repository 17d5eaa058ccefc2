"""The ``gcpIap`` proxy provider against a local IAP key endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import (
    AuthenticationError,
    BackstageError,
    NotFoundError,
    ServiceUnavailableError,
)
from app.identity.resolvers import COMMON_RESOLVERS, ResolverConfigError
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import gcp_iap
from app.providers.gcp_iap import GcpIapAuthenticator
from app.providers.jwt_verify import CLOCK_SKEW_SECONDS
from app.providers.registry import REGISTRY
from tests.fakes.proxy_keys import DELETE, IAP_AUDIENCE, IAP_KEYS_URL, ProxyKeyServer
from tests.proxy.helpers import deps, proxy_request, resolver_context

pytestmark = pytest.mark.anyio

PATH = "auth.providers.gcpIap"
HEADER = "x-goog-iap-jwt-assertion"


@pytest.fixture
def server() -> ProxyKeyServer:
    return ProxyKeyServer()


@pytest.fixture
async def iap(server: ProxyKeyServer, anyio_backend: str) -> AsyncIterator[GcpIapAuthenticator]:
    authenticator = gcp_iap.create({"audience": IAP_AUDIENCE}, PATH, deps(server)).authenticator
    assert isinstance(authenticator, GcpIapAuthenticator)
    yield authenticator
    await authenticator.aclose()


async def _refused(iap: GcpIapAuthenticator, token: str, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as info:
        await iap.authenticate(proxy_request({HEADER: token}))
    assert info.value.status_code == 401


async def test_a_valid_assertion_signs_in(iap: GcpIapAuthenticator, server: ProxyKeyServer) -> None:
    result = await iap.authenticate(proxy_request({HEADER: server.iap_token()}))

    assert result.profile == ProfileInfo(email="jane@example.com")
    assert result.provider_info is not None
    payload = result.provider_info["iapToken"]
    assert payload["sub"] == "accounts.google.com:1122334455"
    assert payload["aud"] == IAP_AUDIENCE
    assert result.sign_in_facts["sub"] == "accounts.google.com:1122334455"
    assert result.sign_in_facts["email"] == "jane@example.com"
    assert [str(r.url) for r in server.requests] == [IAP_KEYS_URL]


async def test_a_configured_header_is_read_instead(server: ProxyKeyServer) -> None:
    raw = {"audience": IAP_AUDIENCE, "jwtHeader": "X-IAP-Assertion"}
    authenticator = gcp_iap.create(raw, PATH, deps(server)).authenticator
    await authenticator.authenticate(proxy_request({"x-iap-assertion": server.iap_token()}))
    with pytest.raises(AuthenticationError) as info:
        await authenticator.authenticate(proxy_request({HEADER: server.iap_token()}))
    assert info.value.message == "Missing Google IAP header: x-iap-assertion"
    await authenticator.aclose()


async def test_a_missing_header_is_401_naming_it(iap: GcpIapAuthenticator) -> None:
    with pytest.raises(AuthenticationError) as info:
        await iap.authenticate(proxy_request({}))
    assert info.value.message == f"Missing Google IAP header: {HEADER}"


async def test_a_forged_assertion_is_refused(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    forged = server.iap_token(key=server.foreign_ec, header={"kid": server.iap_kid})
    await _refused(
        iap,
        forged,
        r"Google IAP JWT assertion \(x-goog-iap-jwt-assertion\) has an invalid signature",
    )


async def test_an_expired_assertion_is_refused(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.iap_token()
    server.clock.advance(600 + CLOCK_SKEW_SECONDS)
    await _refused(iap, token, "has expired")


async def test_a_wrong_audience_is_refused(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.iap_token(claims={"aud": "/projects/1/global/backendServices/2"})
    await _refused(iap, token, "wrong audience '/projects/1/global/backendServices/2'")


async def test_a_wrong_issuer_is_refused(iap: GcpIapAuthenticator, server: ProxyKeyServer) -> None:
    token = server.iap_token(claims={"iss": "https://accounts.google.com"})
    await _refused(iap, token, "wrong issuer 'https://accounts.google.com'")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": DELETE}, "Google IAP token payload is missing subject claim"),
        ({"email": DELETE}, "Google IAP token payload is missing email claim"),
        ({"iat": DELETE}, r"missing the claim\(s\) iat"),
        ({"exp": DELETE}, r"missing the claim\(s\) exp"),
        ({"aud": DELETE}, r"missing the claim\(s\) aud"),
    ],
)
async def test_required_claims(
    iap: GcpIapAuthenticator, server: ProxyKeyServer, claims: dict[str, Any], message: str
) -> None:
    await _refused(iap, server.iap_token(claims=claims), message)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256"])
async def test_only_es256_is_accepted(
    iap: GcpIapAuthenticator, server: ProxyKeyServer, alg: str
) -> None:
    await _refused(iap, server.iap_token(header={"alg": alg}), f"algorithm '{alg}'")


async def test_rotated_keys_are_found_by_one_reload(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    await iap.authenticate(proxy_request({HEADER: server.iap_token()}))
    server.clock.advance(60)
    server.rotate_iap()
    await iap.authenticate(proxy_request({HEADER: server.iap_token()}))
    assert len(server.requests_to("iap")) == 2


async def test_unknown_kids_reload_at_most_once_per_interval(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    await iap.authenticate(proxy_request({HEADER: server.iap_token()}))
    server.clock.advance(60)
    for i in range(5):
        token = server.iap_token(key=server.foreign_ec, header={"kid": f"bogus-{i}"})
        await _refused(iap, token, rf"unknown key \(kid 'bogus-{i}'\)")
    assert len(server.requests_to("iap")) == 2


async def test_an_unreachable_key_endpoint_is_503(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    server.fail("iap", "network")
    with pytest.raises(ServiceUnavailableError, match="Google IAP public keys"):
        await iap.authenticate(proxy_request({HEADER: server.iap_token()}))


async def test_the_keys_url_is_overridable(server: ProxyKeyServer) -> None:
    authenticator = GcpIapAuthenticator(
        audience=IAP_AUDIENCE,
        clock=server.clock,
        keys_url="https://www.gstatic.com/iap/verify/public_key-jwk",
        transport=deps(server).transport,
    )
    assert authenticator.keys.url == IAP_KEYS_URL
    await authenticator.authenticate(proxy_request({HEADER: server.iap_token()}))
    await authenticator.aclose()


def test_audience_is_required(server: ProxyKeyServer) -> None:
    with pytest.raises(ConfigError, match=r"auth\.providers\.gcpIap\.audience"):
        gcp_iap.create({}, PATH, deps(server))


# -- resolvers ----------------------------------------------------------------------------


def _info(email: str | None = "jane@example.com", sub: str | None = None) -> SignInInfo:
    return SignInInfo("gcpIap", ProfileInfo(email=email), {"email": email, "sub": sub})


def test_the_resolver_set() -> None:
    assert set(REGISTRY["gcpIap"].resolvers) == {
        "emailMatchingUserEntityAnnotation",
        "idMatchingUserEntityAnnotation",
        *COMMON_RESOLVERS,
    }


async def test_email_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolve = gcp_iap.RESOLVERS["emailMatchingUserEntityAnnotation"]({})
    identity = await resolve(_info(), resolver_context())
    assert identity.user_entity_ref == "user:default/jane"
    with pytest.raises(NotFoundError):
        await resolve(_info("someone@example.com"), resolver_context())
    with pytest.raises(BackstageError, match="missing email"):
        await resolve(_info(None), resolver_context())


async def test_id_matching_user_entity_annotation_uses_the_id_after_the_prefix(
    anyio_backend: str,
) -> None:
    resolve = gcp_iap.RESOLVERS["idMatchingUserEntityAnnotation"]({})
    identity = await resolve(_info(sub="accounts.google.com:1122334455"), resolver_context())
    assert identity.user_entity_ref == "user:default/jane"
    with pytest.raises(NotFoundError):
        await resolve(_info(sub="accounts.google.com:999"), resolver_context())
    with pytest.raises(BackstageError, match="missing the subject"):
        await resolve(_info(sub=None), resolver_context())


@pytest.mark.parametrize(
    "name", ["emailMatchingUserEntityAnnotation", "idMatchingUserEntityAnnotation"]
)
def test_the_iap_resolvers_take_no_options(name: str) -> None:
    with pytest.raises(ResolverConfigError, match="unknown option"):
        gcp_iap.RESOLVERS[name]({"dangerouslyAllowSignInWithoutUserInCatalog": True})


async def test_the_authenticator_works_again_after_aclose(
    iap: GcpIapAuthenticator, server: ProxyKeyServer
) -> None:
    # The app's lifespan closes authenticators; a test client may run it more than once.
    await iap.authenticate(proxy_request({HEADER: server.iap_token()}))
    await iap.aclose()
    server.clock.advance(3600)
    await iap.authenticate(proxy_request({HEADER: server.iap_token()}))
    assert len(server.requests_to("iap")) == 2
