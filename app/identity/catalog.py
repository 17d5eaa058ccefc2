"""The slice of the Backstage catalog that sign-in needs: User entities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from app.identity.entity_ref import canonical_entity_ref


@dataclass(frozen=True)
class CatalogUser:
    ref: str  # canonical "user:<namespace>/<name>"
    email: str | None = None  # spec.profile.email
    annotations: Mapping[str, str] = field(default_factory=dict)
    member_of: tuple[str, ...] = ()  # memberOf relation targets (group refs)
    # The entity as the catalog holds it (a file catalog's document); empty when unknown.
    entity: Mapping[str, Any] = field(default_factory=dict, compare=False)


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


@runtime_checkable
class EntitySource(Protocol):
    """A catalog that can return a user's whole entity (the remote catalog)."""

    async def get_entity(self, ref: str) -> Mapping[str, Any] | None: ...


def minimal_entity(user: CatalogUser) -> dict[str, Any]:
    """A User entity from what sign-in knows, for catalogs that hold no document."""
    kind, _, rest = user.ref.partition(":")
    namespace, _, name = rest.partition("/")
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if user.annotations:
        metadata["annotations"] = dict(user.annotations)
    spec: dict[str, Any] = {"memberOf": list(user.member_of)}
    if user.email:
        spec["profile"] = {"email": user.email}
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": metadata,
        "spec": spec,
    }


async def user_entity(catalog: Catalog, ref: str) -> Mapping[str, Any] | None:
    """The user's catalog entity (Backstage's ``catalog.getEntityByRef``), if any."""
    if isinstance(catalog, EntitySource):
        return await catalog.get_entity(ref)
    user = await catalog.get_user(ref)
    if user is None:
        return None
    return user.entity or minimal_entity(user)


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
