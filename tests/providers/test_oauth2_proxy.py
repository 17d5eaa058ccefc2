"""The ``oauth2Proxy`` proxy provider: forwarded headers, trusted only from its proxies."""

from __future__ import annotations

from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, NotFoundError
from app.identity.resolvers import COMMON_RESOLVERS, ResolverConfigError
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import oauth2_proxy
from app.providers.oauth2_proxy import OAuth2ProxyAuthenticator
from app.providers.registry import REGISTRY
from tests.fakes.proxy_keys import ProxyKeyServer, unsigned_jwt
from tests.proxy.helpers import PROXY_PEER, deps, proxy_request, resolver_context

pytestmark = pytest.mark.anyio

PATH = "auth.providers.oauth2Proxy"
TRUSTED = {"trustedProxies": ["10.0.0.0/8", "127.0.0.1"]}


def _make(raw: dict[str, Any] | None = None) -> OAuth2ProxyAuthenticator:
    build = oauth2_proxy.create(dict(TRUSTED if raw is None else raw), PATH, deps(ProxyKeyServer()))
    assert isinstance(build.authenticator, OAuth2ProxyAuthenticator)
    return build.authenticator


FORWARDED = {
    "x-forwarded-email": "jane@example.com",
    "x-forwarded-user": "jane",
    "x-forwarded-preferred-username": "Jane",
}


# -- trust ------------------------------------------------------------------------------


async def test_without_trusted_proxies_every_request_is_refused(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = _make({})
    assert "auth.providers.oauth2Proxy.trustedProxies is not set" in caplog.text
    with pytest.raises(AuthenticationError) as info:
        await auth.authenticate(proxy_request(FORWARDED, peer="127.0.0.1"))
    assert info.value.status_code == 401
    assert "'auth.providers.oauth2Proxy.trustedProxies'" in info.value.message
    assert "none is configured" in info.value.message


@pytest.mark.parametrize("peer", ["192.168.1.1", "127.0.0.2", "testclient", None])
async def test_headers_from_other_peers_are_refused(anyio_backend: str, peer: str | None) -> None:
    with pytest.raises(AuthenticationError, match="trusted only from the proxies"):
        await _make().authenticate(proxy_request(FORWARDED, peer=peer))


@pytest.mark.parametrize("peer", [PROXY_PEER, "127.0.0.1", "::ffff:10.1.2.3"])
async def test_headers_from_a_trusted_proxy_sign_in(anyio_backend: str, peer: str) -> None:
    result = await _make().authenticate(proxy_request(FORWARDED, peer=peer))
    assert result.profile == ProfileInfo(email="jane@example.com", display_name="Jane")


def test_a_comma_separated_string_is_accepted(anyio_backend: str) -> None:
    auth = _make({"trustedProxies": "10.0.0.0/8, 127.0.0.1"})
    assert auth.trusted_proxies.configured


@pytest.mark.parametrize("bad", [["proxy.internal"], ["10.0.0.0/40"], 7, {"a": 1}])
def test_invalid_trusted_proxies_fail_at_startup(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"auth\.providers\.oauth2Proxy\.trustedProxies"):
        _make({"trustedProxies": bad})


# -- headers ----------------------------------------------------------------------------


async def test_the_profile_comes_from_the_forwarded_headers(anyio_backend: str) -> None:
    result = await _make().authenticate(proxy_request(FORWARDED))
    assert result.profile == ProfileInfo(email="jane@example.com", display_name="Jane")
    assert result.provider_info == {"accessToken": ""}
    assert result.sign_in_facts == {
        "forwardedUser": "jane",
        "forwardedPreferredUsername": "Jane",
        "forwardedEmail": "jane@example.com",
        "claims": {},
    }


async def test_the_display_name_falls_back_to_the_user(anyio_backend: str) -> None:
    headers = {"X-Forwarded-User": "jane"}
    result = await _make().authenticate(proxy_request(headers))
    assert result.profile == ProfileInfo(display_name="jane")


async def test_the_id_token_is_decoded_not_verified(anyio_backend: str) -> None:
    id_token = unsigned_jwt({"sub": "abc", "email": "jane@example.com"})
    headers = {**FORWARDED, "X-OAUTH2-PROXY-ID-TOKEN": f"Bearer {id_token}"}
    result = await _make().authenticate(proxy_request(headers))
    assert result.provider_info == {"accessToken": id_token}
    assert result.sign_in_facts["claims"] == {"sub": "abc", "email": "jane@example.com"}


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer a b", "token"])
async def test_an_id_token_header_that_is_not_bearer_is_ignored(
    anyio_backend: str, value: str
) -> None:
    headers = {**FORWARDED, "x-oauth2-proxy-id-token": value}
    result = await _make().authenticate(proxy_request(headers))
    assert result.provider_info == {"accessToken": ""}


async def test_a_malformed_id_token_is_401(anyio_backend: str) -> None:
    headers = {**FORWARDED, "x-oauth2-proxy-id-token": "bearer not-a-jwt"}
    with pytest.raises(AuthenticationError) as info:
        await _make().authenticate(proxy_request(headers))
    assert info.value.message.startswith("Authentication failed; caused by AuthenticationError")


# -- resolvers ----------------------------------------------------------------------------


def _info(**facts: Any) -> SignInInfo:
    return SignInInfo("oauth2Proxy", ProfileInfo(), facts)


def test_the_resolver_set() -> None:
    assert set(REGISTRY["oauth2Proxy"].resolvers) == {
        "forwardedUserMatchingUserEntityName",
        "forwardedPreferredUsernameMatchingUserEntityName",
        *COMMON_RESOLVERS,
    }


async def test_forwarded_user_matches_the_entity_name(anyio_backend: str) -> None:
    resolve = oauth2_proxy.RESOLVERS["forwardedUserMatchingUserEntityName"]({})
    identity = await resolve(_info(forwardedUser="jane"), resolver_context())
    assert identity.user_entity_ref == "user:default/jane"
    assert identity.ownership_entity_refs == ("user:default/jane", "group:default/engineering")
    with pytest.raises(NotFoundError):
        await resolve(_info(forwardedUser="nobody"), resolver_context())
    with pytest.raises(AuthenticationError, match=r"did not contain a user \(no x-forwarded-user"):
        await resolve(_info(forwardedUser=None), resolver_context())


async def test_a_name_is_never_parsed_as_a_ref(anyio_backend: str) -> None:
    resolve = oauth2_proxy.RESOLVERS["forwardedUserMatchingUserEntityName"]({})
    with pytest.raises(NotFoundError):
        # Not user:default/jane: the whole value is the name.
        await resolve(_info(forwardedUser="default/jane"), resolver_context())


async def test_forwarded_preferred_username_matches_the_entity_name(anyio_backend: str) -> None:
    resolve = oauth2_proxy.RESOLVERS["forwardedPreferredUsernameMatchingUserEntityName"]({})
    identity = await resolve(_info(forwardedPreferredUsername="jane"), resolver_context())
    assert identity.user_entity_ref == "user:default/jane"
    with pytest.raises(AuthenticationError, match="did not contain a preferred username"):
        await resolve(_info(forwardedUser="jane"), resolver_context())


async def test_the_dangerous_flag_signs_in_without_a_catalog_user(anyio_backend: str) -> None:
    options = {"dangerouslyAllowSignInWithoutUserInCatalog": True}
    resolve = oauth2_proxy.RESOLVERS["forwardedUserMatchingUserEntityName"](options)
    identity = await resolve(_info(forwardedUser="newcomer"), resolver_context())
    assert identity.user_entity_ref == "user:default/newcomer"
    assert identity.ownership_entity_refs == ("user:default/newcomer",)


@pytest.mark.parametrize(
    "options",
    [{"dangerouslyAllowSignInWithoutUserInCatalog": "yes"}, {"allowedDomains": ["x"]}],
)
def test_resolver_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ResolverConfigError):
        oauth2_proxy.RESOLVERS["forwardedUserMatchingUserEntityName"](options)
