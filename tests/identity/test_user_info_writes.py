"""TokenIssuer writes user info only when it changed, or after a while."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from app.identity.keys import MemoryKeyStore
from app.identity.tokens import USER_INFO_REWRITE_SECONDS, TokenIssuer


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


class CountingStore:
    def __init__(self) -> None:
        self.puts: list[tuple[str, dict[str, Any]]] = []

    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        self.puts.append((user_entity_ref, dict(claims)))

    async def get(self, user_entity_ref: str) -> dict[str, Any] | None:
        return None


def test_unchanged_claims_are_not_rewritten_on_every_issuance() -> None:
    clock, store = Clock(), CountingStore()
    issuer = TokenIssuer(issuer="i", key_store=MemoryKeyStore(), clock=clock, user_info=store)

    async def scenario() -> None:
        for _ in range(3):
            await issuer.issue_token(sub="user:default/a", ent=["group:default/g"])
        assert len(store.puts) == 1
        await issuer.issue_token(sub="user:default/a", ent=["group:default/h"])
        assert len(store.puts) == 2
        await issuer.issue_token(sub="user:default/b", ent=[])
        assert len(store.puts) == 3
        clock.t += USER_INFO_REWRITE_SECONDS + 1
        await issuer.issue_token(sub="user:default/a", ent=["group:default/h"])
        assert len(store.puts) == 4
        assert store.puts[-1] == (
            "user:default/a",
            {"sub": "user:default/a", "ent": ["group:default/h"]},
        )

    asyncio.run(scenario())
