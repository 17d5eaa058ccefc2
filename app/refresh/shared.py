"""Refresh coalescing across instances, through the shared database.

Within a process, ``InProcessRefreshCoordinator`` already shares one refresh among racing
requests. With several instances behind a load balancer, the requests of one browser
land on different instances; here the first instance to claim the session's row (an
INSERT on its primary key) refreshes, and the others wait for the row to carry the result,
sealed with the session secret, for the grace window. A claim that outlives its deadline
(an instance died mid-refresh) is taken over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import Clock
from app.core.errors import ServiceUnavailableError
from app.db.errors import bounded
from app.db.schema import refresh_results
from app.oauth.sessions import SessionCodec
from app.providers.base import AuthResult
from app.refresh.coalescing import InProcessRefreshCoordinator

# Longer than any identity provider call may take (their timeout is 10 s by default).
CLAIM_SECONDS = 30.0
POLL_SECONDS = 0.05
_RECORD = "refresh-result"

_WHAT = "Refresh coordination"


class DatabaseRefreshCoordinator:
    def __init__(
        self,
        engine: AsyncEngine,
        codec: SessionCodec,
        clock: Clock,
        *,
        grace_seconds: float,
        claim_seconds: float = CLAIM_SECONDS,
    ) -> None:
        self._engine = engine
        self._codec = codec
        self._clock = clock
        self._grace = grace_seconds
        self._claim = claim_seconds
        # One claim per process: requests racing inside it share the local result.
        self._local = InProcessRefreshCoordinator(clock, grace_seconds=grace_seconds)

    async def run(
        self, key: str, refresh: Callable[[], Awaitable[AuthResult]]
    ) -> tuple[AuthResult, bool]:
        (result, reused_elsewhere), reused_here = await self._local.run(
            key, lambda: self._shared(key, refresh)
        )
        return result, reused_here or reused_elsewhere

    async def _shared(
        self, key: str, refresh: Callable[[], Awaitable[AuthResult]]
    ) -> tuple[AuthResult, bool]:
        deadline = self._clock.now() + self._claim + 5
        while True:
            row = await self._read(key)
            now = self._clock.now()
            if row is not None and row["status"] == "done" and row["expires_at"] > now:
                return self._open(row["result"]), True
            if row is None or row["expires_at"] <= now:
                if await self._try_claim(key, now):
                    return await self._refresh_as_owner(key, refresh), False
                continue
            if now > deadline:
                raise ServiceUnavailableError("Another instance's refresh of this session hung")
            await asyncio.sleep(POLL_SECONDS)

    async def _refresh_as_owner(
        self, key: str, refresh: Callable[[], Awaitable[AuthResult]]
    ) -> AuthResult:
        try:
            result = await refresh()
        except BaseException:
            # Waiters take over and meet the same answer (or a recovered IdP) themselves.
            await self._release(key)
            raise
        sealed = self._codec.seal_json(result.to_json(), name=_RECORD)

        async def record() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(refresh_results)
                    .where(refresh_results.c.key == key)
                    .values(
                        status="done", result=sealed, expires_at=self._clock.now() + self._grace
                    )
                )

        await bounded(_WHAT, record)
        return result

    async def _read(self, key: str) -> dict[str, Any] | None:
        async def read() -> dict[str, Any] | None:
            async with self._engine.connect() as conn:
                query = select(refresh_results).where(refresh_results.c.key == key)
                row = (await conn.execute(query)).first()
            return dict(row._mapping) if row is not None else None

        return await bounded(_WHAT, read)

    async def _try_claim(self, key: str, now: float) -> bool:
        async def claim() -> bool:
            try:
                async with self._engine.begin() as conn:
                    # Expired rows (old results, abandoned claims) go first.
                    await conn.execute(
                        delete(refresh_results).where(
                            refresh_results.c.key == key, refresh_results.c.expires_at <= now
                        )
                    )
                    await conn.execute(
                        insert(refresh_results).values(
                            key=key, status="pending", result=None, expires_at=now + self._claim
                        )
                    )
            except IntegrityError:
                # Another instance claimed it first.
                return False
            return True

        return await bounded(_WHAT, claim)

    async def _release(self, key: str) -> None:
        async def release() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(refresh_results).where(
                        refresh_results.c.key == key, refresh_results.c.status == "pending"
                    )
                )

        await bounded(_WHAT, release)

    def _open(self, sealed: str) -> AuthResult:
        return AuthResult.from_json(self._codec.open_json(sealed, name=_RECORD))
