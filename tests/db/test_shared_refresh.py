"""DatabaseRefreshCoordinator on SQLite and PostgreSQL: two "instances" (two engines on one
database) share one upstream refresh."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from app.db.database import Database
from app.db.schema import refresh_results
from app.identity.types import ProfileInfo
from app.oauth.sessions import SessionCodec
from app.providers.base import AuthResult, OAuthSession
from app.refresh.shared import DatabaseRefreshCoordinator

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


def _result(n: int) -> AuthResult:
    return AuthResult(
        session=OAuthSession(
            access_token=f"at-{n}", token_type="bearer", scope="s", refresh_token=f"rt-{n}"
        ),
        profile=ProfileInfo(email="a@example.com"),
        sign_in_facts={"claims": {"sub": "a"}},
    )


class Upstream:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def refresh(self) -> AuthResult:
        self.calls += 1
        await asyncio.sleep(0.2)
        if self.fail:
            raise RuntimeError("invalid_grant")
        return _result(self.calls)


async def test_two_instances_share_one_refresh(shared_db_url: str) -> None:
    one, two = Database(shared_db_url), Database(shared_db_url)
    await one.start()
    await two.start()
    clock, codec, upstream = Clock(), SessionCodec(["secret"]), Upstream()
    a = DatabaseRefreshCoordinator(one.engine, codec, clock, grace_seconds=5)
    b = DatabaseRefreshCoordinator(two.engine, codec, clock, grace_seconds=5)
    try:
        results = await asyncio.gather(*[c.run("k", upstream.refresh) for c in (a, b, a, b, a, b)])
        assert upstream.calls == 1
        assert {r.session.refresh_token for r, _ in results} == {"rt-1"}
        assert sorted(reused for _, reused in results) == [False] + [True] * 5
        # The stored result is sealed: no token in the table.
        async with one.engine.connect() as conn:
            stored = (await conn.execute(select(refresh_results.c.result))).scalar_one()
        assert "rt-1" not in stored and "at-1" not in stored
        # After the grace window the next refresh goes upstream again.
        clock.t += 6
        result, reused = await b.run("k", upstream.refresh)
        assert (result.session.refresh_token, reused, upstream.calls) == ("rt-2", False, 2)
    finally:
        await one.close()
        await two.close()


async def test_a_failed_refresh_is_not_shared_and_frees_the_claim(shared_db_url: str) -> None:
    db = Database(shared_db_url)
    await db.start()
    clock, upstream = Clock(), Upstream()
    coordinator = DatabaseRefreshCoordinator(db.engine, SessionCodec(["s"]), clock, grace_seconds=5)
    try:
        upstream.fail = True
        with pytest.raises(RuntimeError):
            await coordinator.run("k", upstream.refresh)
        upstream.fail = False
        result, reused = await coordinator.run("k", upstream.refresh)
        assert (result.session.refresh_token, reused) == ("rt-2", False)
    finally:
        await db.close()


async def test_an_abandoned_claim_is_taken_over(shared_db_url: str) -> None:
    db = Database(shared_db_url)
    await db.start()
    clock, upstream = Clock(), Upstream()
    coordinator = DatabaseRefreshCoordinator(
        db.engine, SessionCodec(["s"]), clock, grace_seconds=5, claim_seconds=30
    )
    try:
        # An instance claimed the session and died.
        async with db.engine.begin() as conn:
            await conn.execute(
                refresh_results.insert().values(
                    key="k", status="pending", result=None, expires_at=clock.t - 1
                )
            )
        result, reused = await coordinator.run("k", upstream.refresh)
        assert (result.session.refresh_token, reused) == ("rt-1", False)
    finally:
        await db.close()
