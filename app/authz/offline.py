"""Offline sessions: one row per grant of a refresh token, in Backstage's
``offline_sessions`` table; the token rotates on every use.

Better than Backstage (RFC 9700 section 4.14.2): a rotated-out token presented again means
two holders, so it ends the grant, unless it is a retry by the same client within a short
grace period (a lost response), which rotates once more. Every rotation and revocation
runs in one transaction holding the row's lock (``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite has one writer at a time), or, for a client's own current token, is one
compare-and-set ``UPDATE``, so concurrent refreshes never leave two live tokens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.authz.offline_records import (
    BY_ID,
    ROTATE_CURRENT,
    OfflineSession,
    Rotation,
    session_from_row,
)
from app.authz.refresh_tokens import TokenHasher, token_id
from app.authz.store import to_datetime
from app.config.authorization import RefreshTokenSettings
from app.core.clock import Clock
from app.core.errors import AuthenticationError
from app.db.errors import bounded
from app.db.schema import offline_sessions as table

_WHAT = "Offline session store"
Use = Literal["current", "retry", "reuse", "invalid"]


class RefreshTokenReused(AuthenticationError):
    """A rotated-out refresh token came back: the grant (``session``) is ended."""

    def __init__(self, message: str, session: OfflineSession) -> None:
        super().__init__(message)
        self.session = session


class _Slow(AuthenticationError):
    """Not an error: the grant's hashes are scrypt, to be checked outside the transaction."""

    def __init__(self, session: OfflineSession) -> None:
        super().__init__("scrypt")
        self.session = session


class OfflineSessions:
    def __init__(
        self,
        engine: AsyncEngine,
        hasher: TokenHasher,
        settings: RefreshTokenSettings,
        clock: Clock,
        *,
        reuse_grace_seconds: float,
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._settings = settings
        self._clock = clock
        self._grace = reuse_grace_seconds

    async def issue(self, user_entity_ref: str, client_id: str) -> str:
        """A new grant; replaces the user's grant for this client and evicts the oldest
        beyond ``maxTokensPerUser`` (Backstage's rules)."""
        session_id = str(uuid.uuid4())
        token, token_hash = self._hasher.new_token(session_id)
        now = to_datetime(self._clock.now())

        async def insert_grant() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(table).where(
                        table.c.oidc_client_id == client_id,
                        table.c.user_entity_ref == user_entity_ref,
                    )
                )
                ids = (
                    (
                        await conn.execute(
                            select(table.c.id)
                            .where(table.c.user_entity_ref == user_entity_ref)
                            .order_by(table.c.last_used_at.asc(), table.c.id.asc())
                        )
                    )
                    .scalars()
                    .all()
                )
                excess = len(ids) - (self._settings.max_tokens_per_user - 1)
                if excess > 0:
                    await conn.execute(delete(table).where(table.c.id.in_(ids[:excess])))
                await conn.execute(
                    insert(table).values(
                        id=session_id,
                        user_entity_ref=user_entity_ref,
                        oidc_client_id=client_id,
                        token_hash=token_hash,
                        created_at=now,
                        last_used_at=now,
                    )
                )

        await bounded(_WHAT, insert_grant)
        return token

    def is_expired(self, session: OfflineSession) -> bool:
        now = self._clock.now()
        return (
            now > session.last_used_at + self._settings.token_lifetime_seconds
            or now > session.created_at + self._settings.max_rotation_lifetime_seconds
        )

    async def classify_off_loop(
        self, session: OfflineSession, token: str, client_id: str | None
    ) -> Use:
        """``classify``, in a worker thread when a stored hash is Backstage's scrypt (tens
        of milliseconds of CPU that would stall every other request on the event loop)."""
        if self._cheap(session):
            return self.classify(session, token, client_id)
        return await asyncio.to_thread(self.classify, session, token, client_id)

    def classify(self, session: OfflineSession, token: str, client_id: str | None) -> Use:
        if self._hasher.matches(token, session.token_hash):
            return "current"
        if not self._hasher.matches(token, session.previous_token_hash):
            return "invalid"
        rotated = session.rotated_at or 0.0
        same_client = client_id is not None and client_id == session.oidc_client_id
        if same_client and self._clock.now() - rotated <= self._grace:
            return "retry"
        return "reuse"

    async def get(self, session_id: str) -> OfflineSession | None:
        async def _op() -> Row[Any] | None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(BY_ID, {"session_id": session_id})).first()
                return row

        row = await bounded(_WHAT, _op)
        return session_from_row(row) if row is not None else None

    async def rotate(
        self,
        token: str,
        client_id: str | None,
        check: Callable[[OfflineSession], None] | None = None,
        *,
        entitled_client: str | None = None,
    ) -> Rotation:
        """Read, classify and rotate in one transaction. ``check`` sees the row of a live
        grant before the token is classified; what it raises rolls the transaction back
        (nothing was written yet).

        ``entitled_client``: a client that passes ``check`` for a grant bound to it. Then
        the common case, its own current token, is first tried in one statement (below);
        anything else takes the path above.

        Raises:
            AuthenticationError: RefreshTokenReused when the grant was ended.
        """
        session_id = token_id(token)
        if session_id is None:
            raise AuthenticationError("Invalid refresh token format")
        if entitled_client is not None:
            rotated = await bounded(
                _WHAT, lambda: self._rotate_current(session_id, token, entitled_client)
            )
            if rotated is not None:
                return rotated
        # Backstage's scrypt hashes cost tens of milliseconds: a first pass that meets one
        # checks the token outside the transaction (not holding the connection), and the
        # second pass finds the match remembered.
        warmed = False

        async def rotate_row() -> tuple[Rotation | None, AuthenticationError | None]:
            # Failures are returned, raised after the commit (a rollback would keep the
            # grant that an expired or reused token must end).
            async with self._engine.begin() as conn:
                query = select(table).where(table.c.id == session_id).with_for_update()
                row = (await conn.execute(query)).first()
                if row is None:
                    return None, AuthenticationError("Invalid refresh token")
                session = session_from_row(row)
                expired = self.is_expired(session)
                if check is not None and not expired:
                    check(session)
                if not expired and not warmed and not self._cheap(session):
                    return None, _Slow(session)
                use = (
                    "invalid"
                    if expired
                    else await self.classify_off_loop(session, token, client_id)
                )
                if use in ("current", "retry"):
                    new_token = await self._store_rotation(conn, session, use)
                    rotation = Rotation(
                        session=session, refresh_token=new_token, retried=use == "retry"
                    )
                    return rotation, None
                if use == "reuse" or expired:
                    await conn.execute(delete(table).where(table.c.id == session_id))
                    if use == "reuse":
                        return None, RefreshTokenReused(
                            "Refresh token was already used; the grant is revoked", session
                        )
                return None, AuthenticationError("Invalid refresh token")

        rotation, failure = await bounded(_WHAT, rotate_row)
        if isinstance(failure, _Slow):
            if await self.classify_off_loop(failure.session, token, client_id) == "invalid":
                raise AuthenticationError("Invalid refresh token")
            warmed = True
            rotation, failure = await bounded(_WHAT, rotate_row)
        if failure is not None:
            raise failure
        assert rotation is not None
        return rotation

    async def _rotate_current(self, session_id: str, token: str, client_id: str) -> Rotation | None:
        """The rotation of a live grant of ``client_id`` whose current token this is, as
        one compare-and-set ``UPDATE``: the row changes only if its hash is still the
        presented token's (a concurrent rotation makes it match nothing, on PostgreSQL
        too, where the second writer re-reads the row). None when it matched nothing.

        The hash compared is the current key's: a grant hashed under a previous secret,
        unkeyed or by Backstage takes the full path. A row with that hash had its
        ``last_used_at`` written here with it, so comparing it in SQL is safe; its
        ``created_at`` may be Backstage's (epoch millis in SQLite) and is checked here.
        """
        presented = self._hasher.hash(token)
        new_token, new_hash = self._hasher.new_token(session_id)
        now = self._clock.now()
        stamp = to_datetime(now)
        values = {
            "session_id": session_id,
            "presented": presented,
            "client_id": client_id,
            "live_since": to_datetime(now - self._settings.token_lifetime_seconds),
            "new_hash": new_hash,
            "stamp": stamp,
        }
        async with self._engine.connect() as conn:
            row = (await conn.execute(ROTATE_CURRENT, values)).first()
            session = session_from_row(row) if row is not None else None
            if session is None or self.is_expired(session):
                await conn.rollback()
                return None
            await conn.commit()
        return Rotation(session=session, refresh_token=new_token, retried=False)

    def _cheap(self, session: OfflineSession) -> bool:
        hashes = (session.token_hash, session.previous_token_hash)
        return all(self._hasher.is_cheap(stored) for stored in hashes)

    async def _store_rotation(
        self, conn: AsyncConnection, session: OfflineSession, use: Use
    ) -> str:
        new_token, new_hash = self._hasher.new_token(session.id)
        now = to_datetime(self._clock.now())
        values: dict[str, Any] = {
            "token_hash": new_hash,
            "last_used_at": now,
            # The token this rotation supersedes; its return is reuse.
            "previous_token_hash": session.token_hash,
        }
        if use == "current":
            # A retry keeps the first rotation's time: retries cannot stretch the grace.
            values["rotated_at"] = now
        await conn.execute(update(table).where(table.c.id == session.id).values(**values))
        return new_token

    async def delete(self, session_id: str) -> int:
        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(table).where(table.c.id == session_id))
                return result

        result = await bounded(_WHAT, _op)
        return int(result.rowcount or 0)

    async def delete_for_user(self, user_entity_ref: str) -> int:
        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(table).where(table.c.user_entity_ref == user_entity_ref)
                )
                return result

        result = await bounded(_WHAT, _op)
        return int(result.rowcount or 0)

    async def cleanup(self) -> int:
        now = self._clock.now()
        lifetime = to_datetime(now - self._settings.token_lifetime_seconds)
        rotation = to_datetime(now - self._settings.max_rotation_lifetime_seconds)

        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(table).where(
                        or_(table.c.last_used_at < lifetime, table.c.created_at < rotation)
                    )
                )
                return result

        result = await bounded(_WHAT, _op)
        return int(result.rowcount or 0)
