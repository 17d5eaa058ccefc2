"""The common refresh, a client's own current token, rotates in one compare-and-set
statement; everything else (retries, reuse, expiry, other clients) keeps the full
path's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.authz.offline import OfflineSessions, RefreshTokenReused
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.config.authorization import RefreshTokenSettings
from app.core.errors import AuthenticationError
from app.db.engine import create_database_engine
from app.db.migrate import migrate
from app.db.schema import offline_sessions
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio

SETTINGS = RefreshTokenSettings(
    enabled=True, token_lifetime_seconds=3600, max_rotation_lifetime_seconds=7200
)


@dataclass
class Store:
    engine: AsyncEngine
    clock: FakeClock
    sessions: OfflineSessions
    statements: list[str]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_database_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}")
    await migrate(engine)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    clock = FakeClock()
    hasher = TokenHasher([derive_key("secret")])
    sessions = OfflineSessions(engine, hasher, SETTINGS, clock, reuse_grace_seconds=5)
    try:
        yield Store(engine, clock, sessions, statements)
    finally:
        await engine.dispose()


async def test_a_clients_current_token_rotates_in_one_statement(store: Store) -> None:
    token = await store.sessions.issue("user:default/ada", "cli")
    store.statements.clear()
    rotation = await store.sessions.rotate(token, "cli", entitled_client="cli")
    assert store.statements == ["UPDATE"]
    assert rotation.session.user_entity_ref == "user:default/ada"
    assert not rotation.retried
    # The new token is the grant's current one, the old one its previous one.
    again = await store.sessions.rotate(rotation.refresh_token, "cli", entitled_client="cli")
    assert again.refresh_token != rotation.refresh_token


async def test_a_retry_and_a_reuse_take_the_full_path(store: Store) -> None:
    token = await store.sessions.issue("user:default/ada", "cli")
    first = await store.sessions.rotate(token, "cli", entitled_client="cli")
    retry = await store.sessions.rotate(token, "cli", entitled_client="cli")
    assert retry.retried
    store.clock.advance(10)
    with pytest.raises(RefreshTokenReused):
        await store.sessions.rotate(first.refresh_token, "cli", entitled_client="cli")
    assert await store.sessions.get(first.session.id) is None


async def test_another_clients_grant_is_not_rotated_by_the_fast_path(store: Store) -> None:
    token = await store.sessions.issue("user:default/ada", "other")

    def refuse(session: Any) -> None:
        raise AuthenticationError("Refresh token was not issued to this client")

    with pytest.raises(AuthenticationError, match="not issued to this client"):
        await store.sessions.rotate(token, "cli", refuse, entitled_client="cli")
    assert (await store.sessions.rotate(token, "other", entitled_client="other")).refresh_token


@pytest.mark.parametrize("idle", [False, True])
async def test_an_expired_grant_is_ended_not_rotated(store: Store, idle: bool) -> None:
    token = await store.sessions.issue("user:default/ada", "cli")
    if not idle:
        # Used within its lifetime each time, until past the maximum rotation lifetime.
        for _ in range(2):
            store.clock.advance(SETTINGS.token_lifetime_seconds - 1)
            rotated = await store.sessions.rotate(token, "cli", entitled_client="cli")
            token = rotated.refresh_token
    store.clock.advance(SETTINGS.token_lifetime_seconds + (1 if idle else -1))
    with pytest.raises(AuthenticationError, match="Invalid refresh token"):
        await store.sessions.rotate(token, "cli", entitled_client="cli")
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(offline_sessions))).first() is None
