"""Plugin tokens both ways: ours (Backstage's claims, keys published at
/.backstage/auth/v1/jwks.json) and callers' (verified against the caller's JWKS found
through discovery, obo limited user tokens against our own user keys), with bounded key
clients under a flood of made-up subjects."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any

import httpx2
import pytest
from joserfc import jwt

from app.authz.plugin_callers import NEW_CLIENT_BURST, PluginCallers
from app.config.discovery import read_discovery
from app.core.errors import AuthenticationError
from app.identity.keys import MemoryKeyStore
from app.identity.plugin_keys import DatabasePluginKeys, MemoryPublicKeyRows
from app.identity.plugin_tokens import OnBehalfOf, PluginTokenIssuer, limited_user_token
from app.identity.tokens import TokenIssuer
from app.providers.remote_keys import OutboundHttp
from tests.fakes.clock import FakeClock

DISCOVERY = read_discovery(
    {
        "discovery": {
            "endpoints": [{"target": "http://peer:7007/api/{{pluginId}}", "plugins": ["*"]}]
        }
    },
    backend_base_url="http://main:7007",
    listen_host="",
    listen_port=7007,
)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Each test in a loop of its own (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Peer:
    """Another Backstage backend: its plugins' keys at <base>/.backstage/auth/v1/jwks.json."""

    def __init__(self, clock: FakeClock) -> None:
        self.catalog = PluginTokenIssuer(
            DatabasePluginKeys(MemoryPublicKeyRows(), clock), clock, own_plugin_id="catalog"
        )
        self.fetches: list[str] = []

    async def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.fetches.append(str(request.url))
        if request.url.path == "/api/catalog/.backstage/auth/v1/jwks.json":
            return httpx2.Response(200, json={"keys": await self.catalog.public_keys()})
        return httpx2.Response(404, json={"error": {"name": "NotFoundError"}})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def peer(clock: FakeClock) -> Peer:
    return Peer(clock)


@pytest.fixture
def users(clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(issuer="http://auth/api/auth", key_store=MemoryKeyStore(), clock=clock)


@pytest.fixture
def callers(peer: Peer, clock: FakeClock, users: TokenIssuer) -> PluginCallers:
    http = OutboundHttp(httpx2.MockTransport(peer.handler))
    return PluginCallers(DISCOVERY, http, clock, users)


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    return json.loads(pad(head)), json.loads(pad(body))


@sync
async def test_our_plugin_tokens_carry_backstage_claims_and_verify_against_our_jwks(
    clock: FakeClock,
) -> None:
    ours = PluginTokenIssuer(DatabasePluginKeys(MemoryPublicKeyRows(), clock), clock)
    token = await ours.issue("catalog")
    header, claims = _claims(token)
    assert header["typ"] == "vnd.backstage.plugin" and header["alg"] == "ES256"
    assert list(claims) == ["sub", "aud", "iat", "exp"]
    assert claims["sub"] == "auth" and claims["aud"] == "catalog"
    assert claims["exp"] - claims["iat"] == 3600
    (jwk,) = await ours.public_keys()
    assert jwk["kid"] == header["kid"] and "d" not in jwk
    from joserfc.jwk import KeySet

    jwt.decode(token, KeySet.import_key_set({"keys": [jwk]}))
    # Never past the user token it carries.
    short = await ours.issue("catalog", on_behalf_of=OnBehalfOf("x.y.z", clock.now() + 60))
    assert _claims(short)[1]["exp"] == int(clock.now()) + 60
    assert _claims(short)[1]["obo"] == "x.y.z"


@sync
async def test_a_service_plugin_token_is_the_plugin(peer: Peer, callers: PluginCallers) -> None:
    token = await peer.catalog.issue("auth")
    caller = await callers.verify(token)
    assert caller is not None and caller.subject == "plugin:catalog" and caller.user is None
    # The client is kept: no second fetch.
    await callers.verify(await peer.catalog.issue("auth"))
    assert len(peer.fetches) == 1


@sync
async def test_obo_makes_the_caller_that_user(
    peer: Peer, callers: PluginCallers, users: TokenIssuer
) -> None:
    user_token = await users.issue_token(sub="user:default/ada", ent=[])
    obo = limited_user_token(user_token)
    caller = await callers.verify(await peer.catalog.issue("auth", on_behalf_of=obo))
    assert caller is not None
    assert caller.user == "user:default/ada" and caller.subject == "plugin:catalog"


@sync
async def test_not_a_plugin_token_is_left_to_other_handlers(
    callers: PluginCallers, users: TokenIssuer
) -> None:
    assert await callers.verify(await users.issue_token(sub="user:default/a", ent=[])) is None
    assert await callers.verify("garbage") is None


def _forged(header: dict[str, Any], claims: dict[str, Any]) -> str:
    seg = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{seg(header)}.{seg(claims)}.c2ln"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "auth"}, "Invalid plugin token: missing subject"),
        ({"sub": "../etc", "aud": "auth"}, "Invalid plugin token: forbidden subject format"),
    ],
)
@sync
async def test_subject_rules(callers: PluginCallers, claims: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthenticationError, match=message.replace(".", r"\.")):
        await callers.verify(_forged({"typ": "vnd.backstage.plugin", "alg": "ES256"}, claims))


@sync
async def test_wrong_audience_expired_and_forged_are_refused(
    peer: Peer, callers: PluginCallers, clock: FakeClock
) -> None:
    with pytest.raises(AuthenticationError, match="Failed plugin token verification"):
        await callers.verify(await peer.catalog.issue("scaffolder"))
    expired = await peer.catalog.issue("auth")
    clock.advance(3601)
    with pytest.raises(AuthenticationError, match="Failed plugin token verification"):
        await callers.verify(expired)
    header, claims = _claims(await peer.catalog.issue("auth"))
    with pytest.raises(AuthenticationError, match="Failed plugin token verification"):
        await callers.verify(_forged(header, {**claims, "sub": "catalog"}))


@sync
async def test_obo_not_ours_or_outliving_is_refused(
    peer: Peer, callers: PluginCallers, users: TokenIssuer, clock: FakeClock
) -> None:
    stranger = TokenIssuer(issuer="http://x", key_store=MemoryKeyStore(), clock=clock)
    foreign = limited_user_token(await stranger.issue_token(sub="user:default/eve", ent=[]))
    with pytest.raises(AuthenticationError, match="Failed user token verification"):
        await callers.verify(await peer.catalog.issue("auth", on_behalf_of=foreign))
    ours = limited_user_token(await users.issue_token(sub="user:default/ada", ent=[]))
    # A plugin token that outlives its user token was not made from it.
    stretched = OnBehalfOf(ours.limited_user_token, ours.expires_at + 600)
    peer.catalog._duration = 7200
    with pytest.raises(AuthenticationError, match="Invalid user token in plugin token obo claim"):
        await callers.verify(await peer.catalog.issue("auth", on_behalf_of=stretched))


@sync
async def test_a_flood_of_made_up_subjects_fetches_a_bounded_number_of_jwks(
    peer: Peer, callers: PluginCallers
) -> None:
    header = {"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "k"}
    for i in range(200):
        token = _forged(header, {"sub": f"made-up-{i}", "aud": "auth", "iat": 1, "exp": 2})
        with pytest.raises(AuthenticationError, match="does not have a JWKS endpoint"):
            await callers.verify(token)
    assert len(peer.fetches) <= NEW_CLIENT_BURST
    assert callers.client_count <= 16
    # The same made-up subject again: its failure is remembered, nothing is fetched.
    before = len(peer.fetches)
    with pytest.raises(AuthenticationError):
        await callers.verify(_forged(header, {"sub": "made-up-0", "aud": "auth"}))
    assert len(peer.fetches) == before


@sync
async def test_a_proven_plugin_survives_the_flood(
    peer: Peer, callers: PluginCallers, clock: FakeClock
) -> None:
    await callers.verify(await peer.catalog.issue("auth"))
    header = {"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "k"}
    for i in range(50):
        clock.advance(10)
        with pytest.raises(AuthenticationError):
            await callers.verify(_forged(header, {"sub": f"x{i}", "aud": "auth"}))
    fetches = len(peer.fetches)
    assert await callers.verify(await peer.catalog.issue("auth")) is not None
    assert len(peer.fetches) == fetches


@sync
async def test_concurrent_first_tokens_fetch_once(peer: Peer, callers: PluginCallers) -> None:
    tokens = [await peer.catalog.issue("auth") for _ in range(5)]
    results = await asyncio.gather(*(callers.verify(t) for t in tokens))
    assert all(r is not None for r in results)
    assert len(peer.fetches) == 1
