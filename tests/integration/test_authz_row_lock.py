"""Why rotation locks the offline session's row (``SELECT ... FOR UPDATE``) on PostgreSQL:
two instances (two engines, each on its own event loop and thread) rotate the same
refresh token at once, the first held between its read of the row and its write.

With the lock, the second waits and then sees the first's rotation: from the same client
within the grace period it is a retry (and the first's token becomes the previous one);
from another holder it is reuse, which ends the grant. Without the lock, both read the
same row, both take the token for the current one, and both rotate: two holders keep
refreshing and reuse goes unnoticed. These tests fail when ``.with_for_update()`` is
removed from ``OfflineSessions.rotate``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.authz.offline import OfflineSessions, RefreshTokenReused
from app.authz.offline_records import OfflineSession, Rotation
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.config.authorization import RefreshTokenSettings
from app.db.engine import create_database_engine
from app.db.migrate import ensure_database_exists, migrate
from tests.fakes.clock import FakeClock
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.integration

KEYS = [derive_key("row-lock-session-secret")]
USER = "user:default/alice"
CLIENT = "cli"
# Long enough for the second instance to reach the row while the first holds it.
HOLD_SECONDS = 0.5


class _HeldHasher(TokenHasher):
    """The first instance's hasher: its first comparison (inside the rotation's
    transaction, after the row was read) signals, then holds the transaction open."""

    def __init__(self, keys: Sequence[bytes], inside: threading.Event) -> None:
        super().__init__(keys)
        self._inside = inside

    def matches(self, token: str, stored: str | None) -> bool:
        if not self._inside.is_set():
            self._inside.set()
            time.sleep(HOLD_SECONDS)
        return super().matches(token, stored)


def _sessions(engine: AsyncEngine, hasher: TokenHasher, clock: FakeClock) -> OfflineSessions:
    return OfflineSessions(
        engine, hasher, RefreshTokenSettings(enabled=True), clock, reuse_grace_seconds=10.0
    )


async def _rotate(
    url: str,
    hasher: TokenHasher,
    clock: FakeClock,
    token: str,
    client: str | None,
    entitled: str | None = None,
) -> Rotation:
    # An engine per instance, on the instance's own event loop.
    engine = create_database_engine(url)
    try:
        return await _sessions(engine, hasher, clock).rotate(
            token, client, entitled_client=entitled
        )
    finally:
        await engine.dispose()


def _race(
    url: str, token: str, second_client: str | None, *, second_entitled: str | None = None
) -> tuple[Rotation, Rotation | BaseException]:
    """The first instance rotates ``token`` for CLIENT; the second rotates it for
    ``second_client`` while the first holds the row."""
    clock = FakeClock()
    inside = threading.Event()
    results: dict[str, Rotation | BaseException] = {}

    def run(
        name: str, hasher: TokenHasher, client: str | None, entitled: str | None = None
    ) -> None:
        try:
            results[name] = asyncio.run(_rotate(url, hasher, clock, token, client, entitled))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[name] = exc

    first = threading.Thread(target=run, args=("first", _HeldHasher(KEYS, inside), CLIENT))
    first.start()
    assert inside.wait(10), "the first rotation never read the row"
    second = threading.Thread(
        target=run, args=("second", TokenHasher(KEYS), second_client, second_entitled)
    )
    second.start()
    first.join(30)
    second.join(30)
    rotation = results["first"]
    assert isinstance(rotation, Rotation), rotation
    return rotation, results["second"]


@pytest.fixture
def grant(postgres_server: PostgresServer) -> tuple[str, str]:
    """A fresh database with one grant: its URL and refresh token."""
    url = postgres_server.fresh_url()

    async def setup() -> str:
        engine = create_database_engine(url)
        try:
            await ensure_database_exists(engine)
            await migrate(engine)
            return await _sessions(engine, TokenHasher(KEYS), FakeClock()).issue(USER, CLIENT)
        finally:
            await engine.dispose()

    return url, asyncio.run(setup())


async def _stored(url: str, session_id: str) -> OfflineSession | None:
    engine = create_database_engine(url)
    try:
        return await _sessions(engine, TokenHasher(KEYS), FakeClock()).get(session_id)
    finally:
        await engine.dispose()


def test_a_concurrent_retry_by_the_client_sees_the_first_rotation(
    grant: tuple[str, str],
) -> None:
    url, token = grant
    first, second = _race(url, token, CLIENT)
    assert isinstance(second, Rotation), second
    assert not first.retried
    # Without the lock, the second read the row before the first wrote it: "current".
    assert second.retried
    stored = asyncio.run(_stored(url, first.session.id))
    assert stored is not None
    hasher = TokenHasher(KEYS)
    assert hasher.matches(second.refresh_token, stored.token_hash)
    # The chain holds: the token the first rotation issued is the one superseded.
    assert hasher.matches(first.refresh_token, stored.previous_token_hash)


def test_a_concurrent_refresh_by_another_holder_ends_the_grant(
    grant: tuple[str, str],
) -> None:
    url, token = grant
    first, second = _race(url, token, None)
    # Without the lock, the second holder got a live token of its own.
    assert isinstance(second, RefreshTokenReused), second
    assert asyncio.run(_stored(url, first.session.id)) is None


def test_a_concurrent_compare_and_set_waits_and_sees_the_first_rotation(
    grant: tuple[str, str],
) -> None:
    """The client's one-statement rotation (``entitled_client``) against a rotation that
    holds the row: its UPDATE waits for the lock, then matches nothing (the hash it
    compares is no longer the current one) and the full path calls it a retry."""
    url, token = grant
    first, second = _race(url, token, CLIENT, second_entitled=CLIENT)
    assert isinstance(second, Rotation), second
    assert second.retried
    stored = asyncio.run(_stored(url, first.session.id))
    assert stored is not None
    hasher = TokenHasher(KEYS)
    assert hasher.matches(second.refresh_token, stored.token_hash)
    assert hasher.matches(first.refresh_token, stored.previous_token_hash)
