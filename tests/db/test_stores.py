"""DatabaseKeyStore and DatabaseUserInfoStore on SQLite and PostgreSQL: what one instance
writes, every other instance on the same database reads."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text

from app.core.clock import Clock
from app.core.errors import ServiceUnavailableError
from app.db.database import Database
from app.identity.db_stores import DatabaseKeyStore, DatabaseUserInfoStore
from app.identity.keys import StoredKey
from app.identity.tokens import TokenIssuer

from .conftest import finish, run_python

pytestmark = pytest.mark.anyio

ISS = "http://localhost:7007/api/auth"
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.current = now

    def now(self) -> float:
        return self.current


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    """One auth instance's view of the database: its own engine, migrated."""
    db = Database(url)
    try:
        await db.start()
        yield db
    finally:
        await db.close()


def _key(kid: str, created_at: float = T0) -> StoredKey:
    return StoredKey(kid=kid, jwk={"kty": "EC", "kid": kid, "crv": "P-256"}, created_at=created_at)


def _issuer(db: Database, clock: Clock) -> TokenIssuer:
    return TokenIssuer(
        issuer=ISS,
        key_store=DatabaseKeyStore(db.engine),
        clock=clock,
        user_info=DatabaseUserInfoStore(db.engine),
    )


async def test_key_store_add_list_remove(db_url: str) -> None:
    async with opened(db_url) as db:
        store = DatabaseKeyStore(db.engine)
        assert await store.list_keys() == []
        await store.add_key(_key("a", T0 + 1.25))
        await store.add_key(_key("b", T0 + 2))
        await store.add_key(_key("c", T0 + 3))
        # PostgreSQL: Backstage's column is timestamptz(0), whole seconds (rounded).
        first = T0 + 1 if db_url.startswith("postgresql") else T0 + 1.25
        assert await store.list_keys() == [
            _key("a", first),
            _key("b", T0 + 2),
            _key("c", T0 + 3),
        ]
        await store.remove_keys(["a", "c", "unknown"])
        await store.remove_keys([])
        assert await store.list_keys() == [_key("b", T0 + 2)]
        await store.ping()


async def test_key_rows_are_what_backstage_writes(db_url: str) -> None:
    async with opened(db_url) as db:
        jwk = {"kty": "EC", "x": "é", "y": "y", "crv": "P-256", "kid": "k", "alg": "ES256"}
        await DatabaseKeyStore(db.engine).add_key(StoredKey("k", jwk, T0))
        async with db.engine.connect() as conn:
            kid, key = (await conn.execute(text("SELECT kid, key FROM signing_keys"))).one()
        assert kid == "k"
        # JSON.stringify(key): compact, member order kept.
        assert key == json.dumps(jwk, separators=(",", ":"), ensure_ascii=False)


async def test_keys_added_by_one_instance_are_listed_by_another(shared_db_url: str) -> None:
    async with opened(shared_db_url) as a, opened(shared_db_url) as b:
        await DatabaseKeyStore(a.engine).add_key(_key("from-a"))
        await DatabaseKeyStore(b.engine).add_key(_key("from-b", T0 + 1))
        for db in (a, b):
            kids = [k.kid for k in await DatabaseKeyStore(db.engine).list_keys()]
            assert kids == ["from-a", "from-b"]
        await DatabaseKeyStore(b.engine).remove_keys(["from-a"])
        assert [k.kid for k in await DatabaseKeyStore(a.engine).list_keys()] == ["from-b"]


def _verify(token: str, jwks: list[dict[str, Any]]) -> dict[str, Any]:
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": jwks}), algorithms=["ES256"])
    return dict(decoded.claims)


async def test_a_token_issued_by_one_instance_verifies_with_another_instances_jwks(
    shared_db_url: str,
) -> None:
    clock = FakeClock(time.time())
    async with opened(shared_db_url) as a, opened(shared_db_url) as b:
        token = await _issuer(a, clock).issue_token(sub="user:default/jane", ent=[])
        jwks = await _issuer(b, clock).list_public_keys()
        assert len(jwks) == 1
        assert _verify(token, jwks)["sub"] == "user:default/jane"
        # The user info written by A is served by B.
        info = await DatabaseUserInfoStore(b.engine).get("user:default/jane")
        assert info == {"claims": {"sub": "user:default/jane", "ent": []}}


_ISSUE = """
import asyncio, sys
from app.core.clock import SystemClock
from app.db.database import Database
from app.identity.db_stores import DatabaseKeyStore, DatabaseUserInfoStore
from app.identity.tokens import TokenIssuer

async def main():
    db = Database(sys.argv[1])
    try:
        await db.start()
        issuer = TokenIssuer(
            issuer="http://localhost:7007/api/auth",
            key_store=DatabaseKeyStore(db.engine),
            clock=SystemClock(),
            user_info=DatabaseUserInfoStore(db.engine),
        )
        print(await issuer.issue_token(sub="user:default/jane", ent=["group:default/team"]))
    finally:
        await db.close()

asyncio.run(main())
"""


async def test_a_token_issued_in_another_process_verifies_here(shared_db_url: str) -> None:
    token = finish(run_python(_ISSUE, shared_db_url)).strip()

    async with opened(shared_db_url) as db:
        jwks = await _issuer(db, FakeClock(time.time())).list_public_keys()
        claims = _verify(token, jwks)
        assert claims["sub"] == "user:default/jane"
        info = await DatabaseUserInfoStore(db.engine).get("user:default/jane")
        assert info == {"claims": {"sub": "user:default/jane", "ent": ["group:default/team"]}}


async def test_expired_keys_are_removed_after_three_lifetimes(shared_db_url: str) -> None:
    clock = FakeClock()
    async with opened(shared_db_url) as a, opened(shared_db_url) as b:
        issuer_a, issuer_b = _issuer(a, clock), _issuer(b, clock)
        await issuer_a.issue_token(sub="user:default/jane", ent=[])
        (first,) = await DatabaseKeyStore(b.engine).list_keys()
        assert first.created_at == T0
        # A new key after one lifetime; the first still verifies older tokens.
        clock.current = T0 + 3600
        await issuer_a.issue_token(sub="user:default/jane", ent=[])
        assert len(await issuer_b.list_public_keys()) == 2
        clock.current = T0 + 3 * 3600 - 1
        assert len(await issuer_b.list_public_keys()) == 2
        clock.current = T0 + 3 * 3600
        published = await issuer_b.list_public_keys()
        assert [k["kid"] for k in published] != [first.kid]
        assert len(published) == 1
        # Pruned from the shared table, so every instance stops publishing it.
        remaining = [k.kid for k in await DatabaseKeyStore(a.engine).list_keys()]
        assert first.kid not in remaining
        assert len(remaining) == 1


async def test_user_info_upsert(db_url: str) -> None:
    async with opened(db_url) as db:
        store = DatabaseUserInfoStore(db.engine)
        assert await store.get("user:default/jane") is None
        claims: dict[str, Any] = {"sub": "user:default/jane", "ent": ["user:default/jane"]}
        await store.put("user:default/jane", claims)
        async with db.engine.connect() as conn:
            first_created = (
                await conn.execute(text("SELECT created_at FROM user_info"))
            ).scalar_one()
        await store.put("user:default/jane", {**claims, "ent": ["group:default/ü"], "x": 1})
        await store.put("user:default/john", {"sub": "user:default/john", "ent": []})
        assert await store.get("user:default/jane") == {
            "claims": {"sub": "user:default/jane", "ent": ["group:default/ü"], "x": 1}
        }
        # A fresh document every time: callers cannot mutate what others will read.
        got = await store.get("user:default/jane")
        assert got is not None
        got["claims"]["ent"].append("mutated")
        assert (await store.get("user:default/jane") or {})["claims"]["ent"] == ["group:default/ü"]
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT user_entity_ref, user_info, created_at FROM user_info "
                        "ORDER BY user_entity_ref"
                    )
                )
            ).all()
        assert [r[0] for r in rows] == ["user:default/jane", "user:default/john"]
        assert json.loads(rows[0][1])["claims"]["x"] == 1
        assert rows[0][2] == first_created  # the first issuance
        await store.ping()


# -- unreachable databases ------------------------------------------------------------


def _operations(engine: Any) -> list[Callable[[], Awaitable[Any]]]:
    keys, users = DatabaseKeyStore(engine), DatabaseUserInfoStore(engine)
    return [
        lambda: keys.add_key(_key("k")),
        keys.list_keys,
        lambda: keys.remove_keys(["k"]),
        keys.ping,
        lambda: users.put("user:default/jane", {"sub": "user:default/jane"}),
        lambda: users.get("user:default/jane"),
        users.ping,
    ]


async def test_a_closed_port_is_unavailable_quickly(closed_port: int) -> None:
    url = f"postgresql+psycopg://postgres:secret@127.0.0.1:{closed_port}/backstage_plugin_auth"

    db = Database(url)
    try:
        for operation in _operations(db.engine):
            started = time.monotonic()
            with pytest.raises(ServiceUnavailableError) as info:
                await operation()
            assert time.monotonic() - started < 4
            message = str(info.value)
            assert message.endswith("unavailable: cannot reach the database")
            assert message.startswith(("Key store", "User info store"))
            # Where the database is stays out of HTTP bodies.
            assert "127.0.0.1" not in message and "secret" not in message
        issuer = TokenIssuer(issuer=ISS, key_store=DatabaseKeyStore(db.engine), clock=FakeClock())
        with pytest.raises(ServiceUnavailableError, match="Key store unavailable"):
            await issuer.issue_token(sub="user:default/jane", ent=[])
    finally:
        await db.close()


async def test_a_database_that_never_answers_times_out() -> None:
    # Accepts TCP connections (the kernel's backlog) but never speaks.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        async def run() -> None:
            db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/auth")
            try:
                store = DatabaseKeyStore(db.engine, timeout_seconds=0.5)
                started = time.monotonic()
                with pytest.raises(ServiceUnavailableError, match="did not answer within 0.5s"):
                    await store.list_keys()
                assert time.monotonic() - started < 4
            finally:
                await db.close()

        await run()


async def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    db = Database(f"sqlite+aiosqlite:///{blocker / 'auth.sqlite'}")
    try:
        for operation in _operations(db.engine):
            with pytest.raises(ServiceUnavailableError, match="unavailable: cannot reach"):
                await operation()
    finally:
        await db.close()
        # aiosqlite stops a failed connection's worker thread without awaiting it; the
        # thread then reports to the loop, which must still be open.
        await asyncio.sleep(0.2)
