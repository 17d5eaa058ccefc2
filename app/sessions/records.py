"""Keys remembered until a deadline: ended sessions and spent state nonces.

Both are checks a sealed cookie or a state cannot carry itself: a copy of the cookie or
the callback URL looks exactly like the original. ``add`` is atomic (the first caller
wins), so two instances on one PostgreSQL database never both accept a nonce. Keys are
stored as their SHA-256, never as sent. Expired keys count as absent and are swept out
at most once a minute per process.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import Clock
from app.db.database import Database
from app.db.errors import bounded
from app.db.schema import ended_sessions, used_nonces

SWEEP_INTERVAL_SECONDS = 60.0


class ExpiringKeys(Protocol):
    async def add(self, key: str, *, until: float) -> bool:
        """Remember ``key`` until the epoch time ``until``; False if it already was."""
        ...

    async def contains(self, key: str) -> bool: ...


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class MemoryExpiringKeys:
    """One process, no database: the in-memory configurations."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._keys: dict[str, float] = {}
        self._swept_at = float("-inf")

    async def add(self, key: str, *, until: float) -> bool:
        now = self._clock.now()
        self._sweep(now)
        digest = _digest(key)
        if self._keys.get(digest, now) > now:
            return False
        self._keys[digest] = until
        return True

    async def contains(self, key: str) -> bool:
        return self._keys.get(_digest(key), float("-inf")) > self._clock.now()

    def __len__(self) -> int:
        return len(self._keys)

    def _sweep(self, now: float) -> None:
        if now - self._swept_at >= SWEEP_INTERVAL_SECONDS:
            self._swept_at = now
            self._keys = {k: t for k, t in self._keys.items() if t > now}


class DatabaseExpiringKeys:
    """Shared by every instance on the database; ``table`` has ``key`` and ``expires_at``."""

    def __init__(self, engine: AsyncEngine, table: Table, clock: Clock, *, what: str) -> None:
        self._engine = engine
        self._table = table
        self._clock = clock
        # Names the store in 503 messages ("Session store unavailable: ...").
        self._what = what
        self._swept_at = float("-inf")
        # Asked on every refresh: built once (SQLAlchemy builds and cache-keys a
        # statement made per call, which cost more than SQLite running it).
        self._find = select(table.c.key).where(
            table.c.key == bindparam("digest"), table.c.expires_at > bindparam("now")
        )

    async def add(self, key: str, *, until: float) -> bool:
        table, now, digest = self._table, self._clock.now(), _digest(key)

        async def insert_row() -> bool:
            try:
                async with self._engine.begin() as conn:
                    if now - self._swept_at >= SWEEP_INTERVAL_SECONDS:
                        await conn.execute(delete(table).where(table.c.expires_at <= now))
                    else:
                        # An expired row of this key must not block it.
                        await conn.execute(
                            delete(table).where(table.c.key == digest, table.c.expires_at <= now)
                        )
                    await conn.execute(insert(table).values(key=digest, expires_at=until))
            except IntegrityError:
                # Present and not expired: another request (or instance) added it first.
                return False
            return True

        if not await bounded(self._what, insert_row):
            return False
        if now - self._swept_at >= SWEEP_INTERVAL_SECONDS:
            self._swept_at = now
        return True

    async def contains(self, key: str) -> bool:
        values = {"digest": _digest(key), "now": self._clock.now()}

        async def find() -> object:
            async with self._engine.connect() as conn:
                return await conn.scalar(self._find, values)

        return await bounded(self._what, find) is not None


def session_records(database: Database | None, clock: Clock) -> tuple[ExpiringKeys, ExpiringKeys]:
    """Ended sessions and used nonces: in the database when other processes can see it
    (every instance sharing it refuses them), else in memory. A ``:memory:`` database is
    this process's alone, and so are its records: kept in memory, they spare every
    refresh a trip to SQLite's thread, which cost ~1.7 ms of CPU per oidc refresh under
    load (docs/benchmarks.md)."""
    if database is None or database.is_in_memory:
        return MemoryExpiringKeys(clock), MemoryExpiringKeys(clock)
    engine = database.engine
    return (
        DatabaseExpiringKeys(engine, ended_sessions, clock, what="Session store"),
        DatabaseExpiringKeys(engine, used_nonces, clock, what="Sign-in state store"),
    )
