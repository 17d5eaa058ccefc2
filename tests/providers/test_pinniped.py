"""pinniped against a fake Pinniped Supervisor (tests/fakes/fake_pinniped.py)."""

from __future__ import annotations

import binascii
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from joserfc import jws

from app.config.validation import ConfigError
from app.core.errors import BackstageError
from app.identity.resolvers import COMMON_RESOLVERS
from app.identity.types import ProfileInfo
from app.oauth.state import decode_state, decode_state_fields
from app.providers import pinniped
from app.providers.base import (
    AuthenticateInput,
    AuthResult,
    LogoutInput,
    RefreshInput,
    StartInput,
)
from app.providers.oauth2_base import UpstreamError
from app.providers.pinniped import PinnipedAuthenticator
from app.providers.registry import REGISTRY
from app.providers.registry_types import OAuthProviderDefinition, ProviderDeps
from tests.fakes.app_factory import JarlessClient
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP
from tests.fakes.fake_pinniped import GROUPS, USERNAME, FakePinniped
from tests.fakes.provider_kit import app_client, browser_sign_in
from tests.providers.helpers import SECRETS, STATE, callback, origin_and_path, query_of

pytestmark = pytest.mark.anyio

PATH = "auth.providers.pinniped.development"
CALLBACK = callback("pinniped")
ISSUER = "https://pinniped.example.test/issuer"
SCOPE = "openid pinniped:request-audience username offline_access"
CLUSTER = "my-cluster-audience"

DEFINITION = OAuthProviderDefinition(
    factory=pinniped.create,
    resolvers=COMMON_RESOLVERS,
    start_params=pinniped.START_PARAMS,
)

MakePinniped = Callable[..., PinnipedAuthenticator]


@pytest.fixture
def supervisor(fake: FakeIdP) -> FakePinniped:
    return FakePinniped(fake, issuer=ISSUER)


@pytest.fixture
async def make(
    supervisor: FakePinniped, fake: FakeIdP, clock: FakeClock
) -> AsyncIterator[MakePinniped]:
    built: list[PinnipedAuthenticator] = []

    def build(**config: Any) -> PinnipedAuthenticator:
        raw = {
            "clientId": fake.client_id,
            "clientSecret": fake.client_secret,
            "federationDomain": ISSUER,
            **config,
        }
        deps = ProviderDeps(clock, True, httpx2.MockTransport(supervisor))
        auth = pinniped.create(raw, PATH, deps).authenticator
        assert isinstance(auth, PinnipedAuthenticator)
        built.append(auth)
        return auth

    yield build
    for auth in built:
        await auth.aclose()


def _claims(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
    return payload


async def _start(auth: PinnipedAuthenticator, **extra: str) -> str:
    started = await auth.start(
        StartInput(
            state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS, extra_params=extra
        )
    )
    return started.url


async def _sign_in(auth: PinnipedAuthenticator, fake: FakeIdP, **extra: str) -> AuthResult:
    url = await _start(auth, **extra)
    code = fake.authorize(url)
    return await auth.authenticate(
        AuthenticateInput(
            params={"code": code, "state": query_of(url)["state"]},
            callback_url=CALLBACK,
            secrets=SECRETS,
        )
    )


# -- config ------------------------------------------------------------------------------


def test_a_scope_key_is_refused_with_backstages_message(fake: FakeIdP, clock: FakeClock) -> None:
    raw = {"clientId": "c", "clientSecret": "s", "federationDomain": ISSUER, "scope": "openid"}
    with pytest.raises(ConfigError) as info:
        pinniped.create(raw, PATH, ProviderDeps(clock, True))
    assert pinniped.SCOPE_KEY_REFUSED in str(info.value)
    assert pinniped.SCOPE_KEY_REFUSED == (
        'The pinniped provider no longer supports the "scope" configuration option. '
        'Please use the "additionalScopes" option instead.'
    )


@pytest.mark.parametrize("domain", [None, "pinniped.example.test", "ftp://x"])
def test_federation_domain_is_a_required_http_url(clock: FakeClock, domain: str | None) -> None:
    raw: dict[str, Any] = {"clientId": "c", "clientSecret": "s"}
    if domain is not None:
        raw["federationDomain"] = domain
    with pytest.raises(ConfigError, match="federationDomain"):
        pinniped.create(raw, PATH, ProviderDeps(clock, True))


def test_the_registry_entry_is_the_expected_one() -> None:
    assert REGISTRY["pinniped"] == DEFINITION


# -- start -------------------------------------------------------------------------------


async def test_start_redirects_to_the_supervisor_with_pkce_and_no_nonce(
    make: MakePinniped, supervisor: FakePinniped
) -> None:
    auth = make(additionalScopes=["groups"])
    assert auth.required_scopes == tuple(SCOPE.split())
    assert auth.additional_scopes == ("groups",)
    assert not auth.persist_scopes
    url = await _start(auth)
    assert origin_and_path(url) == f"{ISSUER}/oauth2/authorize"
    query = query_of(url)
    assert query["state"] == STATE
    assert query["scope"] == SCOPE
    assert query["code_challenge_method"] == "S256"
    assert "nonce" not in query and "prompt" not in query
    assert [r.path for r in supervisor.requests] == ["/issuer/.well-known/openid-configuration"]


async def test_start_carries_the_audience_in_backstages_state_encoding(
    make: MakePinniped,
) -> None:
    url = await _start(make(), audience="cluster a&b")
    state = query_of(url)["state"]
    # Backstage: {...decodedState, audience} form-encoded, then hex.
    expected = b"nonce=abc123&env=development&audience=cluster+a%26b"
    assert binascii.unhexlify(state) == expected
    decoded = decode_state(state)
    assert (decoded.nonce, decoded.env, decoded.audience) == (
        "abc123",
        "development",
        "cluster a&b",
    )


# -- the callback ------------------------------------------------------------------------


async def test_without_an_audience_the_supervisors_id_token_is_returned(
    make: MakePinniped, fake: FakeIdP, supervisor: FakePinniped
) -> None:
    result = await _sign_in(make(), fake)
    assert supervisor.exchanges == []
    claims = _claims(result.session.id_token or "")
    assert jws.extract_compact((result.session.id_token or "").encode()).protected["alg"] == "ES256"
    assert (claims["aud"], claims["username"], claims["groups"]) == (
        fake.client_id,
        USERNAME,
        GROUPS,
    )
    assert result.profile == ProfileInfo()
    assert result.sign_in_facts == {}
    assert result.session.refresh_token


async def test_with_an_audience_the_callback_exchanges_for_a_cluster_id_token(
    make: MakePinniped, fake: FakeIdP, supervisor: FakePinniped
) -> None:
    result = await _sign_in(make(), fake, audience=CLUSTER)
    [exchange] = supervisor.exchanges
    assert exchange.path == "/issuer/oauth2/token"
    assert exchange.basic_auth == (fake.client_id, fake.client_secret)
    assert exchange.form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": result.session.access_token,
        "audience": CLUSTER,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:jwt",
    }
    id_token = result.session.id_token or ""
    assert _claims(id_token)["aud"] == CLUSTER
    assert result.session.provider_info()["idToken"] == id_token


async def test_a_refused_exchange_is_backstages_error(make: MakePinniped, fake: FakeIdP) -> None:
    audience = "x.pinniped.dev"
    with pytest.raises(BackstageError) as info:
        await _sign_in(make(), fake, audience=audience)
    assert type(info.value) is BackstageError
    assert info.value.message == (
        f'Failed to get cluster specific ID token for "{audience}": Error: RFC8693 token '
        "exchange failed with error: OPError: invalid_request (The request is missing a "
        "required parameter, includes an invalid parameter value, includes a parameter more "
        "than once, or is otherwise malformed. requested audience cannot contain "
        "'.pinniped.dev')"
    )


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("5xx", "the supervisor answered 503"),
        ("garbage", "the supervisor answered garbage"),
        ("timeout", "the supervisor did not answer within"),
        ("network", "could not reach the supervisor"),
    ],
)
async def test_an_exchange_outage_is_an_upstream_error(
    make: MakePinniped, fake: FakeIdP, supervisor: FakePinniped, mode: str, detail: str
) -> None:
    supervisor.fail("exchange", mode)
    with pytest.raises(UpstreamError) as info:
        await _sign_in(make(), fake, audience=CLUSTER)
    assert info.value.message.startswith(
        f'Failed to get cluster specific ID token for "{CLUSTER}": Error: RFC8693 token '
        f"exchange failed with error: {detail}"
    )


async def test_an_empty_audience_asks_for_no_exchange(
    make: MakePinniped, fake: FakeIdP, supervisor: FakePinniped
) -> None:
    # Backstage keeps "audience=" in the state, and an empty audience is falsy.
    result = await _sign_in(make(), fake, audience="")
    assert supervisor.exchanges == []
    assert _claims(result.session.id_token or "")["aud"] == fake.client_id


async def test_an_id_token_not_signed_es256_is_refused(fake: FakeIdP, clock: FakeClock) -> None:
    # A bare FakeIdP signs RS256: openid-client, told ES256, refuses it.
    raw = {"clientId": fake.client_id, "clientSecret": fake.client_secret}
    deps = ProviderDeps(clock, True, httpx2.MockTransport(fake))
    auth = pinniped.create({**raw, "federationDomain": fake.issuer}, PATH, deps).authenticator
    try:
        started = await auth.start(
            StartInput(state=STATE, scope=SCOPE, callback_url=CALLBACK, secrets=SECRETS)
        )
        code = fake.authorize(started.url)
        with pytest.raises(BackstageError, match="^Authentication failed, "):
            await auth.authenticate(
                AuthenticateInput(
                    params={"code": code, "state": STATE}, callback_url=CALLBACK, secrets=SECRETS
                )
            )
    finally:
        await auth.aclose()


# -- refresh and logout ------------------------------------------------------------------


async def test_refresh_returns_the_supervisors_id_token_without_an_exchange(
    make: MakePinniped, fake: FakeIdP, supervisor: FakePinniped
) -> None:
    auth = make()
    signed_in = await _sign_in(auth, fake, audience=CLUSTER)
    refreshed = await auth.refresh(
        RefreshInput(refresh_token=signed_in.session.refresh_token or "", scope=SCOPE)
    )
    # Backstage's refresh has no state, so no audience: one exchange, at the callback.
    assert len(supervisor.exchanges) == 1
    assert _claims(refreshed.session.id_token or "")["aud"] == fake.client_id
    assert "scope" not in fake.last_request_to("token").form
    assert refreshed.profile == ProfileInfo()


async def test_a_refreshed_id_token_is_verified(make: MakePinniped, fake: FakeIdP) -> None:
    auth = make()
    signed_in = await _sign_in(auth, fake)
    fake.id_token_claims["aud"] = "someone-else"
    with pytest.raises(BackstageError, match="^Authentication failed, "):
        await auth.refresh(
            RefreshInput(refresh_token=signed_in.session.refresh_token or "", scope=SCOPE)
        )


async def test_logout_calls_nobody(make: MakePinniped, supervisor: FakePinniped) -> None:
    result = await make().logout(LogoutInput(refresh_token="rt", app_origin="http://x"))
    assert result.logout_url is None
    assert supervisor.requests == []


# -- discovery ---------------------------------------------------------------------------


async def test_discovery_is_kept_an_hour(
    make: MakePinniped, supervisor: FakePinniped, clock: FakeClock
) -> None:
    auth = make()
    discovery = supervisor.paths["discovery"]
    await _start(auth)
    clock.advance(3599)
    await _start(auth)
    assert len(supervisor.requests_to(discovery)) == 1
    clock.advance(1)
    await _start(auth)
    assert len(supervisor.requests_to(discovery)) == 2


async def test_a_failed_discovery_is_retried_on_the_next_call(
    make: MakePinniped, supervisor: FakePinniped
) -> None:
    auth = make()
    supervisor.fail("discovery", "5xx", times=1)
    with pytest.raises(UpstreamError, match="^Failed to discover OpenID provider metadata"):
        await _start(auth)
    await _start(auth)
    assert len(supervisor.requests_to(supervisor.paths["discovery"])) == 2


async def test_an_expired_discovery_that_fails_is_not_served_stale(
    make: MakePinniped, supervisor: FakePinniped, clock: FakeClock
) -> None:
    # Backstage drops the expired strategy before rebuilding it.
    auth = make()
    await _start(auth)
    clock.advance(3600)
    supervisor.fail("discovery", "timeout", times=1)
    with pytest.raises(UpstreamError):
        await _start(auth)
    await _start(auth)


# -- end to end, through the handlers ----------------------------------------------------


@pytest.fixture
def client(supervisor: FakePinniped, fake: FakeIdP, clock: FakeClock) -> Iterator[JarlessClient]:
    env = {
        "clientId": fake.client_id,
        "clientSecret": fake.client_secret,
        "federationDomain": ISSUER,
    }
    transport = httpx2.MockTransport(supervisor)
    with app_client("pinniped", DEFINITION, env, transport=transport, clock=clock) as client:
        yield client


def test_start_query_audience_reaches_the_state(client: JarlessClient) -> None:
    response = client.get(
        "/api/auth/pinniped/start",
        params={"env": "development", "audience": CLUSTER, "scope": "groups"},
    )
    assert response.status_code == 302, response.text
    query = query_of(response.headers["location"])
    fields = decode_state_fields(query["state"])
    assert list(fields)[-1] == "audience"
    assert fields["audience"] == CLUSTER
    assert query["scope"] == f"groups {SCOPE}"


def test_cluster_id_token_through_the_handlers(client: JarlessClient, fake: FakeIdP) -> None:
    result, jar = browser_sign_in(client, fake, "pinniped", audience=CLUSTER)
    payload = result["payload"]
    assert _claims(payload["providerInfo"]["idToken"])["aud"] == CLUSTER
    assert payload["profile"] == {}
    assert "backstageIdentity" not in payload
    assert "pinniped-refresh-token" in jar
