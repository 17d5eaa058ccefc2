"""Authorization sessions and codes in Backstage's tables. Deciding a session and using a
code are single conditional UPDATEs, so two racing requests cannot both succeed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.errors import bounded
from app.db.schema import oauth_authorization_sessions as sessions_table
from app.db.schema import oidc_authorization_codes as codes_table

_WHAT = "Authorization store"


def to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def to_seconds(value: Any) -> float:
    """A stored timestamp: SQLite gives naive UTC datetimes, knex may write epoch millis."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float):
        return float(value) / 1000
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class AuthorizationSession:
    id: str
    client_id: str
    redirect_uri: str
    response_type: str
    status: str
    expires_at: float
    scope: str | None = None
    state: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    user_entity_ref: str | None = None


@dataclass(frozen=True)
class AuthorizationCode:
    code: str
    session_id: str
    expires_at: float
    used: bool


class AuthorizationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_session(self, session: AuthorizationSession) -> None:
        async def _op() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(sessions_table).values(
                        id=session.id,
                        client_id=session.client_id,
                        redirect_uri=session.redirect_uri,
                        response_type=session.response_type,
                        status=session.status,
                        expires_at=to_datetime(session.expires_at),
                        scope=session.scope,
                        state=session.state,
                        code_challenge=session.code_challenge,
                        code_challenge_method=session.code_challenge_method,
                        nonce=session.nonce,
                    )
                )

        await bounded(_WHAT, _op)

    async def get_session(self, session_id: str) -> AuthorizationSession | None:
        async def _op() -> Row[Any] | None:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(sessions_table).where(sessions_table.c.id == session_id)
                    )
                ).first()
                return row

        row = await bounded(_WHAT, _op)
        if row is None:
            return None
        data = row._asdict()
        data["expires_at"] = to_seconds(data["expires_at"])
        data["status"] = data["status"] or "pending"
        return AuthorizationSession(**data)

    async def decide_session(self, session_id: str, status: str, user_entity_ref: str) -> bool:
        """Pending -> ``status``; False when another request decided it first."""

        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(sessions_table)
                    .where(sessions_table.c.id == session_id, sessions_table.c.status == "pending")
                    .values(status=status, user_entity_ref=user_entity_ref)
                )
                return result

        result = await bounded(_WHAT, _op)
        return result.rowcount == 1

    async def create_code(self, code: AuthorizationCode) -> None:
        async def _op() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(codes_table).values(
                        code=code.code,
                        session_id=code.session_id,
                        expires_at=to_datetime(code.expires_at),
                        used=False,
                    )
                )

        await bounded(_WHAT, _op)

    async def get_code(self, code: str) -> AuthorizationCode | None:
        async def _op() -> Row[Any] | None:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(codes_table).where(codes_table.c.code == code))
                ).first()
                return row

        row = await bounded(_WHAT, _op)
        if row is None:
            return None
        return AuthorizationCode(
            code=row.code,
            session_id=row.session_id,
            expires_at=to_seconds(row.expires_at),
            used=bool(row.used),
        )

    async def use_code(self, code: str) -> bool:
        """Marks the code used; False when another request used it first."""

        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(codes_table)
                    .where(
                        codes_table.c.code == code,
                        or_(codes_table.c.used.is_(None), codes_table.c.used.is_(False)),
                    )
                    .values(used=True)
                )
                return result

        result = await bounded(_WHAT, _op)
        return result.rowcount == 1

    async def cleanup(self, now: float) -> int:
        """Deletes expired sessions (their codes go with them)."""
        cutoff = to_datetime(now)

        async def _op() -> CursorResult[Any]:
            async with self._engine.begin() as conn:
                await conn.execute(delete(codes_table).where(codes_table.c.expires_at < cutoff))
                result = await conn.execute(
                    delete(sessions_table).where(
                        sessions_table.c.expires_at < cutoff,
                        # Approved late in its hour: its code still needs it.
                        sessions_table.c.id.not_in(select(codes_table.c.session_id)),
                    )
                )
                return result

        result = await bounded(_WHAT, _op)
        return int(result.rowcount or 0)
