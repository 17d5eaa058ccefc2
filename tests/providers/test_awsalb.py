"""The ``awsalb`` proxy provider against local ALB key endpoints.

Backstage: ``plugins/auth-backend-module-aws-alb-provider/src/authenticator.ts``
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from app.config.validation import ConfigError
from app.core.errors import (
    AuthenticationError,
    BackstageError,
    NotFoundError,
    ServiceUnavailableError,
)
from app.identity.catalog import CatalogUser
from app.identity.resolvers import COMMON_RESOLVERS, ResolverConfigError
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import awsalb
from app.providers.awsalb import AlbPublicKeys, AwsAlbAuthenticator, public_key_endpoint
from app.providers.jwt_verify import CLOCK_SKEW_SECONDS
from app.providers.registry import REGISTRY
from app.providers.remote_keys import KeyFetchError, OutboundHttp
from tests.fakes.clock import FakeClock
from tests.fakes.proxy_keys import ALB_ARN, ALB_ISSUER, DELETE, REGION, ProxyKeyServer
from tests.proxy.helpers import deps, proxy_request, resolver_context

pytestmark = pytest.mark.anyio

PATH = "auth.providers.awsalb"
CONFIG: dict[str, Any] = {"issuer": ALB_ISSUER, "region": REGION, "signer": ALB_ARN}


@pytest.fixture
def server() -> ProxyKeyServer:
    return ProxyKeyServer()


@pytest.fixture
async def alb(server: ProxyKeyServer, anyio_backend: str) -> AsyncIterator[AwsAlbAuthenticator]:
    authenticator = awsalb.create(dict(CONFIG), PATH, deps(server)).authenticator
    assert isinstance(authenticator, AwsAlbAuthenticator)
    yield authenticator
    await authenticator.aclose()


def _headers(token: str, access_token: str = "alb-access-token") -> dict[str, str]:
    return {"x-amzn-oidc-data": token, "x-amzn-oidc-accesstoken": access_token}


async def _refused(alb: AwsAlbAuthenticator, token: str, message: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError, match=message) as info:
        await alb.authenticate(proxy_request(_headers(token)))
    assert info.value.status_code == 401
    return info.value


# -- success ----------------------------------------------------------------------------


async def test_a_valid_alb_token_signs_in(alb: AwsAlbAuthenticator, server: ProxyKeyServer) -> None:
    result = await alb.authenticate(proxy_request(_headers(server.alb_token())))

    assert result.profile == ProfileInfo(
        email="jane@example.com", display_name="Jane Doe", picture="https://example.com/jane.png"
    )
    assert result.provider_info == {"accessToken": "alb-access-token", "expiresInSeconds": 120}
    assert result.sign_in_facts["email"] == "jane@example.com"
    assert result.sign_in_facts["sub"] == "9f8e7d6c"
    assert result.sign_in_facts["claims"]["iss"] == ALB_ISSUER
    # The key came from the region's endpoint, by kid.
    (fetched,) = server.requests_to("alb")
    assert str(fetched.url) == (
        f"https://public-keys.auth.elb.{REGION}.amazonaws.com/{server.alb_kid}"
    )


async def test_padded_and_unpadded_segments_both_verify(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    padded = server.alb_token(pad=True)
    assert "=" in padded
    await alb.authenticate(proxy_request(_headers(padded)))
    await alb.authenticate(proxy_request(_headers(server.alb_token(pad=False))))


async def test_header_names_are_case_insensitive(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    headers = {"X-Amzn-Oidc-Data": server.alb_token(), "X-Amzn-Oidc-Accesstoken": "at"}
    result = await alb.authenticate(proxy_request(headers))
    assert result.provider_info == {"accessToken": "at", "expiresInSeconds": 120}


async def test_expires_in_is_the_remaining_lifetime(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token()
    server.clock.advance(100)
    result = await alb.authenticate(proxy_request(_headers(token)))
    assert result.provider_info is not None
    assert result.provider_info["expiresInSeconds"] == 20


async def test_display_name_falls_back_to_the_email_local_part(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token(claims={"name": DELETE, "picture": DELETE})
    result = await alb.authenticate(proxy_request(_headers(token)))
    assert result.profile == ProfileInfo(email="jane@example.com", display_name="jane")


async def test_without_signer_config_any_signer_is_accepted(server: ProxyKeyServer) -> None:
    raw = {"issuer": ALB_ISSUER, "region": REGION}
    authenticator = awsalb.create(raw, PATH, deps(server)).authenticator
    token = server.alb_token(header={"signer": "arn:aws:elasticloadbalancing:other"})
    result = await authenticator.authenticate(proxy_request(_headers(token)))
    assert result.sign_in_facts["email"] == "jane@example.com"
    await authenticator.aclose()


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["x-amzn-oidc-data", "x-amzn-oidc-accesstoken"])
async def test_a_missing_header_is_401_naming_it(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer, missing: str
) -> None:
    headers = _headers(server.alb_token())
    del headers[missing]
    with pytest.raises(AuthenticationError) as info:
        await alb.authenticate(proxy_request(headers))
    assert info.value.message == f"Missing ALB OIDC header: {missing}"
    assert server.requests == []


async def test_a_forged_token_is_refused(alb: AwsAlbAuthenticator, server: ProxyKeyServer) -> None:
    # Signed by a key the ALB endpoint does not publish, under the published kid.
    forged = server.alb_token(key=server.foreign_ec)
    await _refused(
        alb, forged, r"ALB OIDC data token \(x-amzn-oidc-data\) has an invalid signature"
    )


async def test_an_expired_token_is_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token()
    server.clock.advance(120 + CLOCK_SKEW_SECONDS)
    await _refused(alb, token, "has expired")


async def test_a_wrong_issuer_is_refused(alb: AwsAlbAuthenticator, server: ProxyKeyServer) -> None:
    token = server.alb_token(claims={"iss": "https://evil.example"})
    await _refused(alb, token, "wrong issuer 'https://evil.example'")


async def test_a_missing_issuer_is_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    await _refused(alb, server.alb_token(claims={"iss": DELETE}), r"missing the claim\(s\) iss")


async def test_another_albs_token_is_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token(header={"signer": "arn:aws:elasticloadbalancing:other-alb"})
    await _refused(alb, token, "not by the configured ALB")


async def test_a_token_without_email_is_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    await _refused(alb, server.alb_token(claims={"email": DELETE}), "has no email claim")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384"])
async def test_other_algorithms_are_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer, alg: str
) -> None:
    token = server.alb_token(header={"alg": alg})
    await _refused(alb, token, f"algorithm '{alg}'; only ES256")
    assert server.requests == []


async def test_a_token_carrying_its_own_key_is_refused(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    jwk = server.foreign_ec.as_dict(private=False)
    token = server.alb_token(header={"jwk": jwk}, key=server.foreign_ec)
    await _refused(alb, token, "key material in its header")


async def test_a_garbage_token_is_refused(alb: AwsAlbAuthenticator) -> None:
    await _refused(alb, "definitely.not.a-jwt", "malformed")


# -- keys -------------------------------------------------------------------------------


async def test_keys_are_cached_per_kid(alb: AwsAlbAuthenticator, server: ProxyKeyServer) -> None:
    for _ in range(3):
        await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert len(server.requests_to("alb")) == 1
    new_kid = server.rotate_alb()
    await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert [r.url.path for r in server.requests_to("alb")][-1] == f"/{new_kid}"
    assert alb.keys.fetch_count == 2


async def test_an_unknown_kid_is_401(alb: AwsAlbAuthenticator, server: ProxyKeyServer) -> None:
    token = server.alb_token(header={"kid": "not-published"}, key=server.foreign_ec)
    await _refused(alb, token, r"signed by an unknown key \(kid 'not-published'\)")


async def test_made_up_kids_do_not_lock_out_a_real_new_key(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    # The review's case: three made-up kids just before a real user whose key is not
    # cached yet (after a restart, or an ALB key rotation).
    for i in range(3):
        token = server.alb_token(header={"kid": f"made-up-{i}"}, key=server.foreign_ec)
        await _refused(alb, token, "unknown key")
    new_kid = server.rotate_alb()
    await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert server.requests_to("alb")[-1].url.path == f"/{new_kid}"


async def test_a_missing_kid_is_fetched_once_per_interval(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token(header={"kid": "made-up"}, key=server.foreign_ec)
    for _ in range(5):
        await _refused(alb, token, "unknown key")
    assert len(server.requests_to("alb")) == 1
    server.clock.advance(30)
    await _refused(alb, token, "unknown key")
    assert len(server.requests_to("alb")) == 2


async def test_all_fetches_together_stay_within_the_burst(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    for i in range(awsalb.KEY_FETCH_BURST + 5):
        token = server.alb_token(header={"kid": f"made-up-{i}"}, key=server.foreign_ec)
        await _refused(alb, token, "unknown key")
    assert len(server.requests_to("alb")) == awsalb.KEY_FETCH_BURST
    # Past the budget a new real key waits for the next interval ...
    new_kid = server.rotate_alb()
    await _refused(alb, server.alb_token(), "unknown key")
    # ... and is found once it has passed.
    server.clock.advance(30)
    await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert server.requests_to("alb")[-1].url.path == f"/{new_kid}"


async def test_another_albs_token_never_reaches_the_key_endpoint(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    token = server.alb_token(
        header={"kid": "made-up", "signer": "arn:other"}, key=server.foreign_ec
    )
    await _refused(alb, token, "not by the configured ALB")
    assert server.requests == []


class _SlowHttp(OutboundHttp):
    """Answers the key of ``slow_kid`` only once released; others at once."""

    def __init__(self, pem_by_kid: dict[str, str], slow_kid: str) -> None:
        super().__init__()
        self.pem_by_kid = pem_by_kid
        self.slow_kid = slow_kid
        self.release = asyncio.Event()
        self.calls: list[str] = []

    async def get(
        self, url: str, *, what: str, headers: Mapping[str, str] | None = None
    ) -> httpx2.Response:
        kid = url.rsplit("/", 1)[1]
        self.calls.append(kid)
        if kid == self.slow_kid:
            await self.release.wait()
        if kid not in self.pem_by_kid:
            raise KeyFetchError(f"{what} at {url} answered 404", missing=True)
        return httpx2.Response(200, text=self.pem_by_kid[kid])


async def test_a_slow_fetch_delays_neither_cached_nor_other_kids(anyio_backend: str) -> None:
    pem = {
        kid: ECKey.generate_key("P-256").as_pem(private=False).decode()
        for kid in ("cached", "slow", "other")
    }
    http = _SlowHttp(pem, slow_kid="slow")
    keys = AlbPublicKeys(endpoint="https://keys.example", http=http, clock=FakeClock())
    assert await keys.key_for("cached") is not None

    slow = asyncio.ensure_future(keys.key_for("slow"))
    await asyncio.sleep(0)
    # The slow fetch is in flight: a cached kid and another new kid are answered now.
    assert await asyncio.wait_for(keys.key_for("cached"), 1) is not None
    assert await asyncio.wait_for(keys.key_for("other"), 1) is not None
    # A second caller for the slow kid joins the fetch in flight instead of a new one.
    second = asyncio.ensure_future(keys.key_for("slow"))
    http.release.set()
    assert (await slow) is not None and (await second) is not None
    assert http.calls == ["cached", "slow", "other"]


async def test_a_kid_that_cannot_be_a_path_segment_is_never_fetched(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    for kid in ["../../etc", "a/b", "x" * 200, "k?x=1"]:
        token = server.alb_token(header={"kid": kid}, key=server.foreign_ec)
        await _refused(alb, token, "unknown key")
    assert server.requests == []


@pytest.mark.parametrize("mode", ["5xx", "network", "garbage"])
async def test_a_failing_key_endpoint_is_503(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer, mode: str
) -> None:
    server.fail("alb", mode)
    with pytest.raises(ServiceUnavailableError) as info:
        await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert info.value.status_code == 503
    assert "ALB public key" in info.value.message


async def test_a_cached_key_outlives_a_failing_endpoint(
    alb: AwsAlbAuthenticator, server: ProxyKeyServer
) -> None:
    await alb.authenticate(proxy_request(_headers(server.alb_token())))
    server.clock.advance(3600)  # the cache entry is stale: a refetch is attempted
    server.fail("alb", "5xx")
    await alb.authenticate(proxy_request(_headers(server.alb_token())))
    assert len(server.requests_to("alb")) == 2


async def test_govcloud_regions_use_the_s3_key_location(anyio_backend: str) -> None:
    assert public_key_endpoint("us-gov-west-1") == (
        "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1"
    )
    assert public_key_endpoint("eu-central-1") == (
        "https://public-keys.auth.elb.eu-central-1.amazonaws.com"
    )
    server = ProxyKeyServer(region="us-gov-west-1")
    raw = {"issuer": ALB_ISSUER, "region": "us-gov-west-1"}
    authenticator = awsalb.create(raw, PATH, deps(server)).authenticator
    await authenticator.authenticate(proxy_request(_headers(server.alb_token())))
    assert server.requests[0].url.host == "s3-us-gov-west-1.amazonaws.com"
    await authenticator.aclose()


async def test_the_key_endpoint_is_overridable(server: ProxyKeyServer) -> None:
    alb = AwsAlbAuthenticator(
        issuer=ALB_ISSUER,
        region="ignored-1",
        clock=server.clock,
        key_endpoint=f"https://public-keys.auth.elb.{REGION}.amazonaws.com/",
        transport=deps(server).transport,
    )
    result = await alb.authenticate(proxy_request(_headers(server.alb_token())))
    await alb.aclose()
    assert result.sign_in_facts["email"] == "jane@example.com"
    # The configured endpoint, not the one the (bogus) region would give.
    (request,) = server.requests_to("alb")
    assert request.url.host == f"public-keys.auth.elb.{REGION}.amazonaws.com"
    assert request.url.path == f"/{server.alb_kid}"


# -- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"region": REGION}, "auth.providers.awsalb.issuer"),
        ({"issuer": ALB_ISSUER}, "auth.providers.awsalb.region"),
        ({"issuer": ALB_ISSUER, "region": "eu-west-1.evil.com/x"}, "auth.providers.awsalb.region"),
        ({"issuer": "", "region": REGION}, "auth.providers.awsalb.issuer"),
    ],
)
def test_config_errors_name_the_key(raw: dict[str, Any], key: str, server: ProxyKeyServer) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        awsalb.create(raw, PATH, deps(server))


def test_sign_in_settings_are_returned_for_the_app(server: ProxyKeyServer) -> None:
    raw = {**CONFIG, "signIn": {"resolvers": [{"resolver": "emailMatchingUserEntityProfileEmail"}]}}
    build = awsalb.create(raw, PATH, deps(server))
    assert build.sign_in is not None
    assert build.sign_in.resolvers == [{"resolver": "emailMatchingUserEntityProfileEmail"}]
    assert build.default_resolver is None


def test_a_missing_signer_is_warned_about(
    server: ProxyKeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    awsalb.create({"issuer": ALB_ISSUER, "region": REGION}, PATH, deps(server))
    assert "auth.providers.awsalb.signer is not set" in caplog.text


# -- resolvers ----------------------------------------------------------------------------


def _info(email: str | None) -> SignInInfo:
    return SignInInfo("awsalb", ProfileInfo(email=email), {"email": email})


def test_the_resolver_set_is_common_plus_the_alb_variant() -> None:
    assert set(REGISTRY["awsalb"].resolvers) == set(COMMON_RESOLVERS)
    assert (
        REGISTRY["awsalb"].resolvers["emailMatchingUserEntityProfileEmail"]
        is awsalb.email_matching_user_entity_profile_email
    )


async def test_the_variant_matches_the_profile_email(anyio_backend: str) -> None:
    resolve = awsalb.email_matching_user_entity_profile_email({})
    identity = await resolve(_info("JANE@example.com"), resolver_context())
    assert identity.user_entity_ref == "user:default/jane"
    assert identity.ownership_entity_refs == ("user:default/jane", "group:default/engineering")


async def test_the_variant_does_not_retry_without_plus_addressing(anyio_backend: str) -> None:
    resolve = awsalb.email_matching_user_entity_profile_email({})
    with pytest.raises(NotFoundError):
        await resolve(_info("jane+work@example.com"), resolver_context())
    # The common resolver would have found jane@example.com.
    common = COMMON_RESOLVERS["emailMatchingUserEntityProfileEmail"]({})
    assert (await common(_info("jane+work@example.com"), resolver_context())).user_entity_ref


async def test_the_variant_needs_an_email(anyio_backend: str) -> None:
    resolve = awsalb.email_matching_user_entity_profile_email({})
    with pytest.raises(BackstageError, match="does not contain an email"):
        await resolve(_info(None), resolver_context())


def test_the_variant_takes_no_options() -> None:
    with pytest.raises(ResolverConfigError, match="unknown option"):
        awsalb.email_matching_user_entity_profile_email({"allowedDomains": ["x"]})


async def test_the_variant_fails_as_not_found_for_an_unknown_user(anyio_backend: str) -> None:
    resolve = awsalb.email_matching_user_entity_profile_email({})
    context = resolver_context(CatalogUser(ref="user:default/other", email="o@example.com"))
    with pytest.raises(NotFoundError):
        await resolve(_info("jane@example.com"), context)
