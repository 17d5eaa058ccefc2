"""What the providers that check JWTs or trust proxies share: app/providers/proxy_trust.py,
remote_keys.py and jwt_verify.py."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey, RSAKey

from app.core.errors import AuthenticationError, ServiceUnavailableError
from app.providers.base import ProxyRequest
from app.providers.jwt_verify import (
    CLOCK_SKEW_SECONDS,
    check_header,
    decode_unverified,
    parse_compact,
    validate_claims,
    verify_jwt,
    verify_signature,
)
from app.providers.proxy_trust import TrustedProxies, cookie, header, parse_networks
from app.providers.remote_keys import FetchLimiter, OutboundHttp, RemoteJwks
from tests.fakes.clock import FakeClock
from tests.fakes.proxy_keys import IAP_KEYS_URL, ProxyKeyServer, sign, unsigned_jwt

pytestmark = pytest.mark.anyio

WHAT = "test token"


@pytest.fixture
def server() -> ProxyKeyServer:
    return ProxyKeyServer()


@pytest.fixture
async def jwks(server: ProxyKeyServer, anyio_backend: str) -> AsyncIterator[RemoteJwks]:
    http = OutboundHttp(httpx2.MockTransport(server))
    yield RemoteJwks(
        url=IAP_KEYS_URL,
        http=http,
        clock=server.clock,
        what="test keys",
        ttl_seconds=3600,
        refetch_interval_seconds=30,
    )
    await http.aclose()


# -- request access -------------------------------------------------------------------------


def test_headers_are_read_case_insensitively() -> None:
    request = ProxyRequest(headers={"X-Forwarded-User": "jane"}, cookies={}, client_host=None)
    assert header(request, "x-forwarded-user") == "jane"
    assert header(request, "X-FORWARDED-USER") == "jane"
    assert header(request, "x-forwarded-email") is None


def test_cookies_are_read_by_exact_name_and_empty_means_absent() -> None:
    request = ProxyRequest(headers={}, cookies={"CF_Authorization": "t", "e": ""}, client_host=None)
    assert cookie(request, "CF_Authorization") == "t"
    assert cookie(request, "cf_authorization") is None
    assert cookie(request, "e") is None


# -- trusted proxies ------------------------------------------------------------------------


def test_networks_accept_cidrs_addresses_and_comma_separated_strings() -> None:
    assert parse_networks(["10.0.0.0/8", "127.0.0.1", "fd00::/8"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert parse_networks("10.0.0.0/8, 192.168.1.7") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    )
    # Host bits are tolerated (10.1.2.3/8 means 10.0.0.0/8).
    assert parse_networks(["10.1.2.3/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize("bad", [["proxy.internal"], ["10.0.0.0/33"], [""], [7]])
def test_networks_refuse_anything_else(bad: list[Any]) -> None:
    with pytest.raises(ValueError, match="is not an IP address or CIDR"):
        parse_networks(bad)


def _trusted(*values: str) -> TrustedProxies:
    return TrustedProxies(parse_networks(list(values)), config_path="auth.providers.x")


def test_without_trusted_proxies_every_peer_is_refused_with_the_setting_named() -> None:
    trusted = TrustedProxies((), config_path="auth.providers.oauth2Proxy")
    assert not trusted.configured
    for peer in ("10.0.0.1", "127.0.0.1", None):
        with pytest.raises(AuthenticationError) as info:
            trusted.check(peer, headers_what="identity headers")
        assert info.value.status_code == 401
        assert "'auth.providers.oauth2Proxy.trustedProxies'" in info.value.message
        assert "none is configured" in info.value.message


@pytest.mark.parametrize("peer", ["10.0.0.1", "10.255.255.255", "127.0.0.1", "::ffff:10.9.9.9"])
def test_peers_inside_the_trusted_networks_pass(peer: str) -> None:
    _trusted("10.0.0.0/8", "127.0.0.1").check(peer, headers_what="identity headers")


@pytest.mark.parametrize("peer", ["11.0.0.1", "127.0.0.2", "testclient", "", None, "::1"])
def test_other_peers_are_refused_naming_the_peer(peer: str | None) -> None:
    with pytest.raises(AuthenticationError) as info:
        _trusted("10.0.0.0/8", "127.0.0.1").check(peer, headers_what="identity headers")
    assert "'auth.providers.x.trustedProxies'" in info.value.message
    assert (peer or "an unknown address") in info.value.message


def test_ipv6_networks() -> None:
    trusted = _trusted("fd00::/8")
    trusted.check("fd12::1", headers_what="h")
    with pytest.raises(AuthenticationError):
        trusted.check("fe80::1", headers_what="h")


# -- fetch limiter ----------------------------------------------------------------------


def test_the_limiter_allows_one_fetch_per_interval() -> None:
    clock = FakeClock()
    limiter = FetchLimiter(clock, interval_seconds=30)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(29.9)
    assert not limiter.try_acquire()
    clock.advance(0.1)
    assert limiter.try_acquire()


def test_the_limiter_allows_a_burst_within_a_sliding_window() -> None:
    clock = FakeClock()
    limiter = FetchLimiter(clock, interval_seconds=10, burst=2)
    assert limiter.try_acquire()
    clock.advance(5)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(5)  # the first one left the window
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_the_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        FetchLimiter(FakeClock(), interval_seconds=1, burst=0)


# -- remote JWKS ------------------------------------------------------------------------


async def test_keys_are_fetched_on_first_use_and_then_cached(
    server: ProxyKeyServer, jwks: RemoteJwks
) -> None:
    key = await jwks.key_for(server.iap_kid)
    assert isinstance(key, ECKey) and key.kid == server.iap_kid
    assert not key.is_private
    await jwks.key_for(server.iap_kid)
    server.clock.advance(3599)
    await jwks.key_for(server.iap_kid)
    assert jwks.fetch_count == 1
    assert len(server.requests_to("iap")) == 1


async def test_an_unknown_kid_reloads_once_then_waits_for_the_interval(
    server: ProxyKeyServer, jwks: RemoteJwks
) -> None:
    await jwks.key_for(server.iap_kid)
    server.clock.advance(31)
    new_kid = server.rotate_iap()
    assert (await jwks.key_for(new_kid)) is not None  # rotation: one reload finds it
    assert jwks.fetch_count == 2
    for i in range(20):  # made-up kids: no further fetch within the interval
        assert (await jwks.key_for(f"made-up-{i}")) is None
    assert jwks.fetch_count == 2
    server.clock.advance(30)
    assert (await jwks.key_for("made-up-again")) is None
    assert jwks.fetch_count == 3


async def test_keys_are_reloaded_after_the_ttl(server: ProxyKeyServer, jwks: RemoteJwks) -> None:
    await jwks.key_for(server.iap_kid)
    server.clock.advance(3600)
    await jwks.key_for(server.iap_kid)
    assert jwks.fetch_count == 2


async def test_a_failed_ttl_reload_keeps_the_cached_keys(
    server: ProxyKeyServer, jwks: RemoteJwks
) -> None:
    await jwks.key_for(server.iap_kid)
    server.clock.advance(3600)
    server.fail("iap", "5xx")
    assert (await jwks.key_for(server.iap_kid)) is not None
    assert jwks.fetch_count == 2


@pytest.mark.parametrize("mode", ["5xx", "404", "garbage", "network"])
async def test_no_keys_at_all_is_a_503(server: ProxyKeyServer, jwks: RemoteJwks, mode: str) -> None:
    server.fail("iap", mode, times=1)
    with pytest.raises(ServiceUnavailableError) as info:
        await jwks.key_for(server.iap_kid)
    assert info.value.status_code == 503
    assert "test keys" in info.value.message or "Fetching the test keys" in info.value.message


async def test_after_a_failed_first_fetch_retries_wait_for_the_interval(
    server: ProxyKeyServer, jwks: RemoteJwks
) -> None:
    server.fail("iap", "network", times=1)
    with pytest.raises(ServiceUnavailableError):
        await jwks.key_for(server.iap_kid)
    with pytest.raises(ServiceUnavailableError, match="retried at most every 30 seconds"):
        await jwks.key_for(server.iap_kid)
    assert jwks.fetch_count == 1
    server.clock.advance(30)
    assert (await jwks.key_for(server.iap_kid)) is not None
    assert jwks.fetch_count == 2


async def test_a_jwks_without_keys_is_a_503(anyio_backend: str) -> None:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json={"nope": 1}))
    http = OutboundHttp(transport)
    jwks = RemoteJwks(url="https://k.test/jwks", http=http, clock=FakeClock(), what="k")
    with pytest.raises(ServiceUnavailableError, match="not a usable JWK set"):
        await jwks.key_for("x")
    await http.aclose()


# -- compact JWS --------------------------------------------------------------------------


def _ec() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "k1"})


def test_padded_segments_parse_only_when_allowed() -> None:
    token = sign({"alg": "ES256", "kid": "k1"}, {"a": "bc"}, _ec(), pad=True)
    assert "=" in token
    assert parse_compact(token, what=WHAT, allow_padding=True).claims == {"a": "bc"}
    with pytest.raises(AuthenticationError, match="The test token is malformed"):
        parse_compact(token, what=WHAT)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "!!.e30.x", "e30.W10.x", "bm90IGpzb24.e30.x", "e30.e30.x=y"],
)
def test_malformed_tokens_are_401(token: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed"):
        parse_compact(token, what=WHAT)


def test_oversized_tokens_are_refused_before_parsing() -> None:
    with pytest.raises(AuthenticationError, match="too large"):
        parse_compact("a" * 40_000, what=WHAT)


@pytest.mark.parametrize(
    ("header_value", "message"),
    [
        ({"alg": "none", "kid": "k1"}, "algorithm 'none'; only ES256"),
        ({"alg": "HS256", "kid": "k1"}, "algorithm 'HS256'"),
        ({"alg": "RS256", "kid": "k1"}, "algorithm 'RS256'"),
        ({"kid": "k1"}, "algorithm None"),
        ({"alg": "ES256", "kid": "k1", "jwk": {"kty": "EC"}}, "key material in its header (jwk)"),
        ({"alg": "ES256", "kid": "k1", "jku": "https://evil"}, "key material"),
        ({"alg": "ES256", "kid": "k1", "x5u": "https://evil"}, "key material"),
        ({"alg": "ES256"}, "has no key id"),
        ({"alg": "ES256", "kid": 7}, "invalid header"),
        ({"alg": "ES256", "kid": "k1", "crit": ["exp"]}, "critical header extensions"),
    ],
)
def test_header_checks(header_value: dict[str, Any], message: str) -> None:
    token = parse_compact(unsigned_jwt({"a": 1}, header_value), what=WHAT)
    with pytest.raises(AuthenticationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_header(token, what=WHAT, algorithms=("ES256",))


def test_a_signature_by_another_key_is_refused() -> None:
    key = _ec()
    token = parse_compact(sign({"alg": "ES256", "kid": "k1"}, {"a": 1}, key), what=WHAT)
    verify_signature(token, ECKey.import_key(key.as_pem(private=False)), what=WHAT)
    with pytest.raises(AuthenticationError, match="invalid signature"):
        verify_signature(token, _ec(), what=WHAT)


def test_a_tampered_payload_is_refused() -> None:
    key = _ec()
    head, _, sig = sign({"alg": "ES256", "kid": "k1"}, {"sub": "a"}, key).split(".")
    forged = ".".join([head, unsigned_jwt({"sub": "admin"}).split(".")[1], sig])
    with pytest.raises(AuthenticationError, match="invalid signature"):
        verify_signature(parse_compact(forged, what=WHAT), key, what=WHAT)


def test_a_key_of_the_wrong_type_or_curve_is_refused() -> None:
    token = parse_compact(sign({"alg": "ES256", "kid": "k1"}, {"a": 1}, _ec()), what=WHAT)
    with pytest.raises(AuthenticationError, match="does not fit ES256"):
        verify_signature(token, RSAKey.generate_key(2048), what=WHAT)
    with pytest.raises(AuthenticationError, match="does not fit ES256"):
        verify_signature(token, ECKey.generate_key("P-384"), what=WHAT)


async def test_verify_jwt_names_an_unknown_kid() -> None:
    async def no_key(kid: str) -> None:
        return None

    token = sign({"alg": "ES256", "kid": "k9"}, {"a": 1}, _ec())
    with pytest.raises(AuthenticationError, match=r"signed by an unknown key \(kid 'k9'\)"):
        await verify_jwt(token, what=WHAT, algorithms=("ES256",), key_for=no_key)


def test_decode_unverified_reads_claims_without_a_key() -> None:
    assert decode_unverified(unsigned_jwt({"sub": "x"}), what=WHAT) == {"sub": "x"}
    with pytest.raises(AuthenticationError, match="malformed"):
        decode_unverified("not-a-jwt", what=WHAT)


# -- claims ---------------------------------------------------------------------------------

NOW = 1_700_000_000


def test_valid_claims_pass() -> None:
    validate_claims(
        {"exp": NOW + 10, "iss": "i", "aud": ["x", "y"]},
        what=WHAT,
        now=NOW,
        issuer="i",
        audiences=["y"],
    )


def test_expiry_allows_the_clock_skew_only() -> None:
    validate_claims({"exp": NOW - CLOCK_SKEW_SECONDS + 1}, what=WHAT, now=NOW)
    with pytest.raises(AuthenticationError, match="The test token has expired"):
        validate_claims({"exp": NOW - CLOCK_SKEW_SECONDS}, what=WHAT, now=NOW)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": NOW + 10, "iss": "other", "aud": "x"}, "wrong issuer 'other'"),
        ({"exp": NOW + 10, "iss": "i", "aud": "z"}, "wrong audience 'z'"),
        ({"exp": NOW + 10, "iss": "i", "aud": ["z", "w"]}, "wrong audience"),
        ({"exp": NOW + 10, "aud": "x"}, r"missing the claim\(s\) iss"),
        ({"iss": "i", "aud": "x"}, r"missing the claim\(s\) exp"),
        ({"exp": "tomorrow", "iss": "i", "aud": "x"}, "invalid 'exp' claim"),
        ({"exp": NOW + 10, "iss": "i", "aud": "x", "nbf": NOW + 600}, "not valid yet"),
        ({"exp": NOW + 10, "iss": "i", "aud": "x", "iat": NOW + 600}, "not valid yet"),
    ],
)
def test_claim_failures_say_what_is_wrong(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthenticationError, match=message) as info:
        validate_claims(claims, what=WHAT, now=NOW, issuer="i", audiences=["x", "y"])
    assert info.value.status_code == 401
