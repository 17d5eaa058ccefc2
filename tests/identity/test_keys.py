from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from app.identity.keys import MemoryKeyStore, StoredKey
from app.identity.tokens import TokenIssuer
from app.identity.user_info import MemoryUserInfoStore

pytestmark = pytest.mark.anyio


def _key(kid: str, created_at: float = 0.0) -> StoredKey:
    return StoredKey(kid=kid, jwk={"kty": "EC", "kid": kid}, created_at=created_at)


async def test_memory_key_store_add_list_remove() -> None:
    store = MemoryKeyStore()
    assert await store.list_keys() == []
    await store.add_key(_key("a", 1.0))
    await store.add_key(_key("b", 2.0))
    await store.add_key(_key("c", 3.0))
    assert [k.kid for k in await store.list_keys()] == ["a", "b", "c"]
    await store.remove_keys(["a", "c", "unknown"])
    assert await store.list_keys() == [_key("b", 2.0)]
    await store.remove_keys([])
    assert [k.kid for k in await store.list_keys()] == ["b"]


def test_stored_key_is_frozen() -> None:
    key = _key("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.kid = "b"  # type: ignore[misc]


class _FailingRemoveStore(MemoryKeyStore):
    async def remove_keys(self, kids: Sequence[str]) -> None:
        raise RuntimeError("database down")


async def test_jwks_survives_a_failing_prune(clock, caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        store = _FailingRemoveStore()
        await store.add_key(_key("old", clock.now() - 20_000))
        await store.add_key(_key("new", clock.now()))
        issuer = TokenIssuer(
            issuer="http://x/api/auth", key_store=store, clock=clock, expiration_seconds=3600
        )
        assert [k["kid"] for k in await issuer.list_public_keys()] == ["new"]

    await run()
    assert "Failed to remove expired signing keys" in caplog.text


async def test_memory_user_info_store_round_trip_and_isolation() -> None:
    store = MemoryUserInfoStore()
    assert await store.get("user:default/jane") is None
    claims: dict[str, Any] = {"sub": "user:default/jane", "ent": ["user:default/jane"]}
    await store.put("user:default/jane", claims)
    claims["ent"].append("group:default/x")
    got = await store.get("user:default/jane")
    assert got == {"claims": {"sub": "user:default/jane", "ent": ["user:default/jane"]}}
    assert got is not None
    got["claims"]["ent"].append("group:default/y")
    again = await store.get("user:default/jane")
    assert again == {"claims": {"sub": "user:default/jane", "ent": ["user:default/jane"]}}
    await store.put("user:default/jane", {"sub": "user:default/jane", "ent": []})
    assert await store.get("user:default/jane") == {
        "claims": {"sub": "user:default/jane", "ent": []}
    }
