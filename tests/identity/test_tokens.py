from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from app.core.errors import BackstageError, InputError
from app.identity.entity_ref import (
    canonical_entity_ref,
    parse_entity_ref,
    stringify_entity_ref,
)
from app.identity.keys import MemoryKeyStore, StoredKey
from app.identity.tokens import MAX_TOKEN_LENGTH, TokenIssuer
from app.identity.user_info import MemoryUserInfoStore

pytestmark = pytest.mark.anyio

ISS = "http://localhost:7007/api/auth"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload))


def _issuer(clock: Any, store: Any = None, **kwargs: Any) -> TokenIssuer:
    return TokenIssuer(issuer=ISS, key_store=store or MemoryKeyStore(), clock=clock, **kwargs)


async def test_header_claims_and_key_shape(clock) -> None:
    store = MemoryKeyStore()
    issuer = _issuer(clock, store)
    token = await issuer.issue_token(
        sub="user:default/jane",
        ent=["user:default/jane", "group:default/team"],
        extra_claims={"custom": {"a": 1}, "other": "x"},
    )
    header, payload = _parts(token)
    assert list(header) == ["typ", "alg", "kid"]
    assert header["typ"] == "vnd.backstage.user"
    assert header["alg"] == "ES256"
    assert uuid.UUID(header["kid"]).version == 4
    # Custom claims first, then the standard ones; no ent by default.
    assert list(payload) == ["custom", "other", "iss", "sub", "aud", "iat", "exp", "uip"]
    assert payload["custom"] == {"a": 1}
    assert payload["iss"] == ISS
    assert payload["sub"] == "user:default/jane"
    assert payload["aud"] == "backstage"
    assert payload["iat"] == int(clock.now())
    assert payload["exp"] == payload["iat"] + 3600
    # The payload segment is JSON.stringify's bytes.
    assert token.split(".")[1] == _b64(_compact(payload))
    (stored,) = await store.list_keys()
    assert stored.kid == header["kid"]
    assert stored.created_at == clock.now()
    assert list(stored.jwk) == ["kty", "x", "y", "crv", "kid", "alg"]
    assert stored.jwk["kty"] == "EC"
    assert stored.jwk["crv"] == "P-256"
    assert stored.jwk["alg"] == "ES256"
    assert stored.jwk["kid"] == header["kid"]
    assert "d" not in stored.jwk
    assert await issuer.list_public_keys() == [stored.jwk]
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": [stored.jwk]}))
    assert decoded.claims == payload


async def test_ent_claim_when_ownership_claim_enabled(clock) -> None:
    issuer = _issuer(clock, omit_ownership_claim=False)
    token = await issuer.issue_token(
        sub="user:default/jane", ent=["user:default/jane", "group:default/team"]
    )
    _, payload = _parts(token)
    assert list(payload) == ["iss", "sub", "ent", "aud", "iat", "exp", "uip"]
    assert payload["ent"] == ["user:default/jane", "group:default/team"]


async def test_custom_claims_cannot_override_standard_ones(clock) -> None:
    issuer = _issuer(clock)
    token = await issuer.issue_token(
        sub="user:default/jane",
        ent=[],
        extra_claims={"iss": "evil", "exp": 1, "sub": "user:default/admin", "x": 1},
    )
    _, payload = _parts(token)
    # As with JS object spread: the key keeps its first position, the value is ours.
    assert list(payload) == ["iss", "exp", "x", "sub", "aud", "iat", "uip"]
    assert payload["iss"] == ISS
    assert payload["sub"] == "user:default/jane"
    assert payload["exp"] == payload["iat"] + 3600


@pytest.mark.parametrize("sub", ["user:default/jane", "user:default/Jöhn.Dœ"])
async def test_uip_rebuilds_into_a_verifiable_limited_user_token(clock, sub: str) -> None:
    issuer = _issuer(clock)
    token = await issuer.issue_token(sub=sub, ent=[sub])
    header, payload = _parts(token)
    (jwk,) = await issuer.list_public_keys()
    # What UserTokenHandler.createLimitedUserToken does in other backends.
    limited_header = {"typ": "vnd.backstage.limited-user", "alg": "ES256", "kid": header["kid"]}
    limited_payload = {"sub": payload["sub"], "iat": payload["iat"], "exp": payload["exp"]}
    limited = ".".join(
        [_b64(_compact(limited_header)), _b64(_compact(limited_payload)), payload["uip"]]
    )
    result = jws.deserialize_compact(
        limited, KeySet.import_key_set({"keys": [jwk]}), algorithms=["ES256"]
    )
    assert json.loads(result.payload) == limited_payload
    assert result.protected == limited_header
    # A proof is bound to its claims: another exp must not verify.
    forged = ".".join(
        [
            _b64(_compact(limited_header)),
            _b64(_compact({**limited_payload, "exp": limited_payload["exp"] + 1})),
            payload["uip"],
        ]
    )
    with pytest.raises(Exception, match="signature"):
        jws.deserialize_compact(
            forged, KeySet.import_key_set({"keys": [jwk]}), algorithms=["ES256"]
        )


@pytest.mark.parametrize(
    ("algorithm", "kty"),
    [("ES384", "EC"), ("ES512", "EC"), ("RS256", "RSA"), ("PS256", "RSA")],
)
async def test_other_algorithms(clock, algorithm: str, kty: str) -> None:
    issuer = _issuer(clock, algorithm=algorithm)
    token = await issuer.issue_token(sub="user:default/jane", ent=[])
    header, payload = _parts(token)
    assert header["alg"] == algorithm
    (jwk,) = await issuer.list_public_keys()
    assert jwk["kty"] == kty and jwk["alg"] == algorithm
    assert "d" not in jwk and "p" not in jwk
    keys = KeySet.import_key_set({"keys": [jwk]})
    jwt.decode(token, keys, algorithms=[algorithm])
    limited = ".".join(
        [
            _b64(
                _compact({"typ": "vnd.backstage.limited-user", "alg": algorithm, "kid": jwk["kid"]})
            ),
            _b64(_compact({k: payload[k] for k in ("sub", "iat", "exp")})),
            payload["uip"],
        ]
    )
    jws.deserialize_compact(limited, keys, algorithms=[algorithm])


def test_unsupported_algorithm_fails_at_construction(clock) -> None:
    with pytest.raises(ValueError, match="Unsupported identity token algorithm 'HS256'"):
        _issuer(clock, algorithm="HS256")


async def test_key_rotates_after_expiration(clock) -> None:
    store = MemoryKeyStore()
    issuer = _issuer(clock, store, expiration_seconds=600)
    kid1 = _parts(await issuer.issue_token(sub="user:default/a", ent=[]))[0]["kid"]
    clock.advance(599)
    kid2 = _parts(await issuer.issue_token(sub="user:default/a", ent=[]))[0]["kid"]
    assert kid2 == kid1
    clock.advance(1)
    kid3 = _parts(await issuer.issue_token(sub="user:default/a", ent=[]))[0]["kid"]
    assert kid3 != kid1
    assert [k.kid for k in await store.list_keys()] == [kid1, kid3]


async def test_jwks_window_is_three_key_lifetimes_and_prunes(clock) -> None:
    store = MemoryKeyStore()
    issuer = _issuer(clock, store, expiration_seconds=600)
    start = clock.now()
    kid1 = _parts(await issuer.issue_token(sub="user:default/a", ent=[]))[0]["kid"]
    clock.advance(600)
    kid2 = _parts(await issuer.issue_token(sub="user:default/a", ent=[]))[0]["kid"]
    clock.current = start + 3 * 600 - 1
    assert [k["kid"] for k in await issuer.list_public_keys()] == [kid1, kid2]
    assert len(await store.list_keys()) == 2
    clock.current = start + 3 * 600
    assert [k["kid"] for k in await issuer.list_public_keys()] == [kid2]
    assert [k.kid for k in await store.list_keys()] == [kid2]
    clock.current = start + 600 + 3 * 600
    assert await issuer.list_public_keys() == []
    assert await store.list_keys() == []


class _SlowStore(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.added: list[str] = []

    async def add_key(self, key: StoredKey) -> None:
        await asyncio.sleep(0.01)
        self.added.append(key.kid)
        await super().add_key(key)


async def test_concurrent_issuances_share_one_key(clock) -> None:
    store = _SlowStore()
    issuer = _issuer(clock, store)
    tokens = await asyncio.gather(
        *(issuer.issue_token(sub=f"user:default/u{i}", ent=[]) for i in range(10))
    )
    assert len(store.added) == 1
    assert {_parts(t)[0]["kid"] for t in tokens} == set(store.added)


class _FlakyStore(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True
        self.attempts: list[StoredKey] = []

    async def add_key(self, key: StoredKey) -> None:
        self.attempts.append(key)
        if self.fail:
            raise RuntimeError("store down")
        await super().add_key(key)


async def test_key_is_stored_before_use_and_failures_retry(clock) -> None:
    store = _FlakyStore()
    issuer = _issuer(clock, store)
    with pytest.raises(RuntimeError, match="store down"):
        await issuer.issue_token(sub="user:default/a", ent=[])
    store.fail = False
    token = await issuer.issue_token(sub="user:default/a", ent=[])
    assert len(store.attempts) == 2
    assert _parts(token)[0]["kid"] == store.attempts[1].kid
    assert [k.kid for k in await store.list_keys()] == [store.attempts[1].kid]


async def test_refs_are_canonicalised_and_ent_deduplicated(clock) -> None:
    user_info = MemoryUserInfoStore()
    issuer = _issuer(clock, omit_ownership_claim=False, user_info=user_info)
    token = await issuer.issue_token(
        sub="User:Default/Jane.Doe",
        ent=["User:DEFAULT/Jane.Doe", "group:team", "Group:default/team", "group:ns/x"],
    )
    _, payload = _parts(token)
    assert payload["sub"] == "user:default/Jane.Doe"
    assert payload["ent"] == ["user:default/Jane.Doe", "group:default/team", "group:ns/x"]
    assert await user_info.get("user:default/Jane.Doe") == {
        "claims": {"sub": "user:default/Jane.Doe", "ent": payload["ent"]}
    }


@pytest.mark.parametrize("sub", ["jane", "default/jane", "user:", ":jane", "user:/jane", ""])
async def test_invalid_sub_is_refused(clock, sub: str) -> None:
    store = MemoryKeyStore()
    with pytest.raises(InputError) as info:
        await _issuer(clock, store).issue_token(sub=sub, ent=[])
    assert info.value.message == (
        '"sub" claim provided by the auth resolver is not a valid EntityRef.'
    )
    assert await store.list_keys() == []


async def test_invalid_ent_is_refused(clock) -> None:
    with pytest.raises(InputError, match='"ent" claim'):
        await _issuer(clock).issue_token(sub="user:default/a", ent=["team"])


async def test_user_info_is_upserted_with_extra_claims(clock) -> None:
    user_info = MemoryUserInfoStore()
    issuer = _issuer(clock, user_info=user_info)
    await issuer.issue_token(sub="user:default/a", ent=["group:default/g1"])
    await issuer.issue_token(
        sub="user:default/a",
        ent=["user:default/a", "group:default/g2"],
        extra_claims={"sub": "ignored", "ent": ["ignored"], "foo": "bar"},
    )
    assert await user_info.get("user:default/a") == {
        "claims": {
            "sub": "user:default/a",
            "ent": ["user:default/a", "group:default/g2"],
            "foo": "bar",
        }
    }


async def test_excessively_large_tokens_are_refused(clock) -> None:
    user_info = MemoryUserInfoStore()
    issuer = _issuer(clock, omit_ownership_claim=False, user_info=user_info)
    ent: Sequence[str] = [f"group:default/team-{i:05d}" for i in range(2000)]
    with pytest.raises(BackstageError) as info:
        await issuer.issue_token(sub="user:default/a", ent=ent)
    assert info.value.name == "Error"
    assert info.value.message.startswith(
        "Failed to issue a new user token. The resulting token is excessively large, "
        "with either too many ownership claims or too large custom claims. You likely "
        "have a bug either in the sign-in resolver or catalog data. The following claims "
        'were requested: \'{"iss":"http://localhost:7007/api/auth","sub":"user:'
    )
    assert info.value.message.endswith("'")
    assert await user_info.get("user:default/a") is None
    # Custom claims count too, even with ent omitted; just under the limit passes.
    issuer = _issuer(clock)
    with pytest.raises(BackstageError, match="excessively large"):
        await issuer.issue_token(
            sub="user:default/a", ent=[], extra_claims={"blob": "x" * MAX_TOKEN_LENGTH}
        )
    token = await issuer.issue_token(
        sub="user:default/a", ent=[], extra_claims={"blob": "x" * 20000}
    )
    assert len(token) <= MAX_TOKEN_LENGTH


def test_expiration_seconds_property(clock) -> None:
    assert _issuer(clock, expiration_seconds=900).expiration_seconds == 900


@pytest.mark.parametrize(
    ("ref", "kwargs", "expected"),
    [
        ("component:ns/name", {}, ("component", "ns", "name")),
        ("User:Jane", {}, ("User", "default", "Jane")),
        ("jane", {"default_kind": "User"}, ("User", "default", "jane")),
        ("ns/jane", {"default_kind": "User"}, ("User", "ns", "jane")),
        ("jane", {"default_kind": "User", "default_namespace": "x"}, ("User", "x", "jane")),
        # A colon after the namespace separator is part of the name.
        ("ns/na:me", {"default_kind": "User"}, ("User", "ns", "na:me")),
        ("user:ns/a/b", {}, ("user", "ns", "a/b")),
    ],
)
def test_parse_entity_ref(ref: str, kwargs: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert parse_entity_ref(ref, **kwargs) == expected


@pytest.mark.parametrize("ref", ["", "jane", "user:", ":jane", "user:/jane", "user:ns/"])
def test_parse_entity_ref_rejects(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_entity_ref(ref)


def test_stringify_entity_ref() -> None:
    assert stringify_entity_ref("User", "Default", "Jane") == "user:default/Jane"
    assert canonical_entity_ref("jane", default_kind="User") == "user:default/jane"
