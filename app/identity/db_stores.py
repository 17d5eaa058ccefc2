"""Key store and user_info store over the auth plugin's database (``auth.keyStore.provider:
database``, Backstage's default). Every auth instance on the same database publishes the
keys of all the others.

Rows are what Backstage's ``DatabaseKeyStore`` and ``UserInfoDatabase`` write: compact
JSON text, ``created_at``/``updated_at`` timestamps. A database that cannot be reached
surfaces as ``ServiceUnavailableError`` (503), never as a driver error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.errors import DEFAULT_OPERATION_TIMEOUT_SECONDS, bounded
from app.db.schema import signing_keys, user_info
from app.identity.keys import StoredKey

T = TypeVar("T")


def _json(value: Any) -> str:
    # JSON.stringify: compact, key order kept, non-ASCII as is.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _epoch(value: datetime) -> float:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class _DatabaseStore:
    _what = "Database"

    def __init__(
        self, engine: AsyncEngine, *, timeout_seconds: float = DEFAULT_OPERATION_TIMEOUT_SECONDS
    ) -> None:
        self._engine = engine
        self._timeout = timeout_seconds

    async def _run(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await bounded(self._what, operation, timeout_seconds=self._timeout)

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        """Raises ServiceUnavailableError unless the database answers (for readiness, which
        has a budget of its own)."""

        async def select_one() -> None:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await bounded(self._what, select_one, timeout_seconds=timeout_seconds or self._timeout)


class DatabaseKeyStore(_DatabaseStore):
    """Table ``signing_keys``: public JWKs only."""

    _what = "Key store"

    async def add_key(self, key: StoredKey) -> None:
        row = {
            "kid": key.kid,
            "key": _json(key.jwk),
            "created_at": datetime.fromtimestamp(key.created_at, UTC),
        }

        async def insert_row() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(insert(signing_keys).values(row))

        await self._run(insert_row)

    async def list_keys(self) -> list[StoredKey]:
        query = select(signing_keys.c.kid, signing_keys.c.key, signing_keys.c.created_at)

        async def read() -> Sequence[Any]:
            async with self._engine.connect() as conn:
                ordered = query.order_by(signing_keys.c.created_at, signing_keys.c.kid)
                return (await conn.execute(ordered)).all()

        rows = await self._run(read)
        return [
            StoredKey(kid=row.kid, jwk=json.loads(row.key), created_at=_epoch(row.created_at))
            for row in rows
        ]

    async def remove_keys(self, kids: Sequence[str]) -> None:
        if not kids:
            return

        async def delete_rows() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(delete(signing_keys).where(signing_keys.c.kid.in_(list(kids))))

        await self._run(delete_rows)


class DatabaseUserInfoStore(_DatabaseStore):
    """Table ``user_info``: ``{"claims": {...}}`` per user, upserted on every issuance."""

    _what = "User info store"

    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        row = {
            "user_entity_ref": user_entity_ref,
            "user_info": _json({"claims": dict(claims)}),
            "updated_at": func.now(),
        }
        # created_at keeps the first issuance.
        update = {"user_info": row["user_info"], "updated_at": func.now()}
        conflict = [user_info.c.user_entity_ref]
        statement: postgresql.Insert | sqlite.Insert
        if self._engine.dialect.name == "postgresql":
            statement = postgresql.insert(user_info).values(row)
            statement = statement.on_conflict_do_update(index_elements=conflict, set_=update)
        else:
            statement = sqlite.insert(user_info).values(row)
            statement = statement.on_conflict_do_update(index_elements=conflict, set_=update)

        async def upsert() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(statement)

        await self._run(upsert)

    async def get(self, user_entity_ref: str) -> dict[str, Any] | None:
        query = select(user_info.c.user_info).where(user_info.c.user_entity_ref == user_entity_ref)

        async def read() -> Any:
            async with self._engine.connect() as conn:
                return await conn.scalar(query)

        document = await self._run(read)
        if document is None:
            return None
        value: dict[str, Any] = json.loads(document)
        return value
