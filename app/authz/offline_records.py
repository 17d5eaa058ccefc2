"""Rows of Backstage's ``offline_sessions`` table as the offline-session store reads and
writes them, and the statements it runs on every refresh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update

from app.authz.store import to_seconds
from app.db.schema import offline_sessions as table


@dataclass(frozen=True)
class OfflineSession:
    id: str
    user_entity_ref: str
    oidc_client_id: str | None
    token_hash: str
    created_at: float
    last_used_at: float
    previous_token_hash: str | None
    rotated_at: float | None


@dataclass(frozen=True)
class Rotation:
    session: OfflineSession
    refresh_token: str
    retried: bool


def session_from_row(row: Any) -> OfflineSession:
    data = row._asdict()
    for key in ("created_at", "last_used_at"):
        data[key] = to_seconds(data[key])
    data["rotated_at"] = to_seconds(data["rotated_at"]) if data["rotated_at"] else None
    return OfflineSession(**data)


# Built once: constructing a statement per request cost more than SQLite running it.
BY_ID = select(table).where(table.c.id == bindparam("session_id"))
ROTATE_CURRENT = (
    update(table)
    .where(
        table.c.id == bindparam("session_id"),
        table.c.token_hash == bindparam("presented"),
        table.c.oidc_client_id == bindparam("client_id"),
        table.c.last_used_at >= bindparam("live_since", type_=table.c.last_used_at.type),
    )
    .values(
        token_hash=bindparam("new_hash"),
        previous_token_hash=bindparam("presented"),
        last_used_at=bindparam("stamp", type_=table.c.last_used_at.type),
        rotated_at=bindparam("stamp"),
    )
    .returning(*table.c)
)
