"""Key store and user_info store over the auth plugin's database (``auth.keyStore.provider:
database``, Backstage's default). Every auth instance on the same database publishes the
keys of all the others.

Rows are what Backstage's ``DatabaseKeyStore`` and ``UserInfoDatabase`` write: compact
JSON text, ``created_at``/``updated_at`` timestamps. A database that cannot be reached
surfaces as ``ServiceUnavailableError`` (503), never as a driver error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.errors import DEFAULT_OPERATION_TIMEOUT_SECONDS, database_errors
from app.db.schema import signing_keys, user_info
from app.identity.keys import StoredKey


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

    def _errors(self) -> AbstractAsyncContextManager[None]:
        return database_errors(self._what, timeout_seconds=self._timeout)

    async def ping(self) -> None:
        """Raises ServiceUnavailableError unless the database answers (for readiness)."""
        async with self._errors(), self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


class DatabaseKeyStore(_DatabaseStore):
    """Table ``signing_keys``: public JWKs only."""

    _what = "Key store"

    async def add_key(self, key: StoredKey) -> None:
        row = {
            "kid": key.kid,
            "key": _json(key.jwk),
            "created_at": datetime.fromtimestamp(key.created_at, UTC),
        }
        async with self._errors(), self._engine.begin() as conn:
            await conn.execute(insert(signing_keys).values(row))

    async def list_keys(self) -> list[StoredKey]:
        query = select(signing_keys.c.kid, signing_keys.c.key, signing_keys.c.created_at)
        async with self._errors(), self._engine.connect() as conn:
            rows = (
                await conn.execute(query.order_by(signing_keys.c.created_at, signing_keys.c.kid))
            ).all()
        return [
            StoredKey(kid=row.kid, jwk=json.loads(row.key), created_at=_epoch(row.created_at))
            for row in rows
        ]

    async def remove_keys(self, kids: Sequence[str]) -> None:
        if not kids:
            return
        async with self._errors(), self._engine.begin() as conn:
            await conn.execute(delete(signing_keys).where(signing_keys.c.kid.in_(list(kids))))


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
        async with self._errors(), self._engine.begin() as conn:
            await conn.execute(statement)

    async def get(self, user_entity_ref: str) -> dict[str, Any] | None:
        query = select(user_info.c.user_info).where(user_info.c.user_entity_ref == user_entity_ref)
        async with self._errors(), self._engine.connect() as conn:
            document = await conn.scalar(query)
        if document is None:
            return None
        value: dict[str, Any] = json.loads(document)
        return value
