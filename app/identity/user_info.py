"""The claims behind ``/v1/userinfo``, recorded on every token issuance.

Other backends read ``ent`` from here when the token omits it, so it must be
written before the token is handed out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol


class UserInfoStore(Protocol):
    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        """Upsert ``{"claims": claims}`` for the user."""
        ...

    async def get(self, user_entity_ref: str) -> dict[str, Any] | None:
        """The stored ``{"claims": {...}}`` document (the ``/v1/userinfo`` body), if any."""
        ...


class MemoryUserInfoStore:
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    async def put(self, user_entity_ref: str, claims: Mapping[str, Any]) -> None:
        self._rows[user_entity_ref] = {"claims": copy.deepcopy(dict(claims))}

    async def get(self, user_entity_ref: str) -> dict[str, Any] | None:
        row = self._rows.get(user_entity_ref)
        # Callers must not be able to mutate what later requests will see.
        return copy.deepcopy(row) if row is not None else None
