"""The slice of the Backstage catalog that sign-in needs: User entities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.identity.entity_ref import canonical_entity_ref


@dataclass(frozen=True)
class CatalogUser:
    ref: str  # canonical "user:<namespace>/<name>"
    email: str | None = None  # spec.profile.email
    annotations: Mapping[str, str] = field(default_factory=dict)
    member_of: tuple[str, ...] = ()  # memberOf relation targets (group refs)


class Catalog(Protocol):
    async def get_user(self, ref: str) -> CatalogUser | None:
        """The user with this canonical ref, if any."""
        ...

    async def find_users(
        self,
        *,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> list[CatalogUser]:
        """Users matching every given filter (all users when none is given)."""
        ...


def _fold(value: str) -> str:
    # The catalog indexes and queries refs and filter values lower-cased.
    return value.lower()


class InMemoryCatalog:
    def __init__(self, users: Sequence[CatalogUser] = ()) -> None:
        self._users = tuple(users)
        self._by_ref = {_fold(canonical_entity_ref(u.ref)): u for u in self._users}

    async def get_user(self, ref: str) -> CatalogUser | None:
        try:
            key = _fold(canonical_entity_ref(ref))
        except ValueError:
            return None
        return self._by_ref.get(key)

    async def find_users(
        self,
        *,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> list[CatalogUser]:
        return [u for u in self._users if _matches(u, annotations, email)]


def _matches(user: CatalogUser, annotations: Mapping[str, str] | None, email: str | None) -> bool:
    if email is not None and (user.email is None or _fold(user.email) != _fold(email)):
        return False
    if not annotations:
        return True
    have = {_fold(k): _fold(v) for k, v in user.annotations.items()}
    return all(have.get(_fold(k)) == _fold(v) for k, v in annotations.items())
