"""TokenIssuer writes user info only when it changed, or after a while."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from app.core.errors import ServiceUnavailableError
from app.identity import user_info_writer
from app.identity.keys import MemoryKeyStore
from app.identity.tokens import TokenIssuer
from app.identity.user_info_writer import REWRITE_RETRY_SECONDS, USER_INFO_REWRITE_SECONDS

pytestmark = pytest.mark.anyio


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


async def test_unchanged_claims_are_not_rewritten_on_every_issuance() -> None:
    clock, store = Clock(), CountingStore()
    issuer = TokenIssuer(issuer="i", key_store=MemoryKeyStore(), clock=clock, user_info=store)

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


class GatedStore(CountingStore):
    """A store whose writes wait for a gate (a slow database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = False

    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        await super().put(user_entity_ref, claims)


def _gated_issuer() -> tuple[Clock, GatedStore, TokenIssuer]:
    clock, store = Clock(), GatedStore()
    issuer = TokenIssuer(issuer="i", key_store=MemoryKeyStore(), clock=clock, user_info=store)
    return clock, store, issuer


async def test_a_due_rewrite_is_made_by_one_request_while_the_others_go_on() -> None:
    clock, store, issuer = _gated_issuer()

    store.gate.set()
    await issuer.issue_token(sub="user:default/a", ent=[])
    clock.t += USER_INFO_REWRITE_SECONDS + 1
    store.gate.clear()
    rewrite = asyncio.create_task(issuer.issue_token(sub="user:default/a", ent=[]))
    await asyncio.sleep(0)
    # While that write waits on the database, the same user's other requests do not.
    others = [issuer.issue_token(sub="user:default/a", ent=[]) for _ in range(20)]
    tokens = await asyncio.wait_for(asyncio.gather(*others), timeout=1)
    assert len(tokens) == 20 and not rewrite.done()
    store.gate.set()
    await rewrite
    assert len(store.puts) == 2


async def test_new_claims_are_stored_before_any_token_carries_them() -> None:
    clock, store, issuer = _gated_issuer()

    first = asyncio.create_task(issuer.issue_token(sub="user:default/a", ent=[]))
    second = asyncio.create_task(issuer.issue_token(sub="user:default/a", ent=[]))
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    store.gate.set()
    await asyncio.gather(first, second)


async def test_a_failed_rewrite_is_tried_again_by_the_next_request() -> None:
    clock, store, issuer = _gated_issuer()

    store.gate.set()
    await issuer.issue_token(sub="user:default/a", ent=[])
    clock.t += USER_INFO_REWRITE_SECONDS + 1
    store.fail = True
    with pytest.raises(RuntimeError, match="database down"):
        await issuer.issue_token(sub="user:default/a", ent=[])
    store.fail = False
    await issuer.issue_token(sub="user:default/a", ent=[])
    assert len(store.puts) == 2


async def test_only_the_most_recent_users_are_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(user_info_writer, "USER_INFO_REMEMBERED", 3)
    clock, store = Clock(), CountingStore()
    issuer = TokenIssuer(issuer="i", key_store=MemoryKeyStore(), clock=clock, user_info=store)

    for name in ("a", "b", "c", "a", "d"):
        await issuer.issue_token(sub=f"user:default/{name}", ent=[])
    assert len(store.puts) == 4  # a's second sign-in wrote nothing
    # b, the least recently signed in, was forgotten; a, c and d are remembered.
    for name in ("a", "c", "d"):
        await issuer.issue_token(sub=f"user:default/{name}", ent=[])
    assert len(store.puts) == 4
    await issuer.issue_token(sub="user:default/b", ent=[])
    assert len(store.puts) == 5


class UnreachableAfterFirstWrite(CountingStore):
    """A database that goes away after the user's first sign-in."""

    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        await super().put(user_entity_ref, claims)
        if len(self.puts) > 1:
            raise ServiceUnavailableError("User info store unavailable")


async def test_a_known_user_keeps_signing_in_while_the_database_is_down() -> None:
    # The reliability review: guest refreshes turned into 503s once the 60 s rewrite came
    # due during a database outage.
    clock, store = Clock(), UnreachableAfterFirstWrite()
    issuer = TokenIssuer(issuer="i", key_store=MemoryKeyStore(), clock=clock, user_info=store)

    await issuer.issue_token(sub="user:default/a", ent=[])
    clock.t += USER_INFO_REWRITE_SECONDS + 1
    assert await issuer.issue_token(sub="user:default/a", ent=[])
    assert len(store.puts) == 2  # the rewrite was tried
    # Not on every request meanwhile, but again a few seconds later.
    assert await issuer.issue_token(sub="user:default/a", ent=[])
    assert len(store.puts) == 2
    clock.t += REWRITE_RETRY_SECONDS + 0.1
    assert await issuer.issue_token(sub="user:default/a", ent=[])
    assert len(store.puts) == 3
    # New claims still need the database: nobody gets a token it cannot back.
    with pytest.raises(ServiceUnavailableError):
        await issuer.issue_token(sub="user:default/a", ent=["group:default/new"])
