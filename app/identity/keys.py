"""Where public signing keys live so that every auth process can publish them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredKey:
    """A public JWK as published in ``/.well-known/jwks.json``, with its creation time."""

    kid: str
    jwk: dict[str, Any]
    created_at: float  # epoch seconds; drives the 3x-lifetime JWKS window


class KeyStore(Protocol):
    """Shared by all auth processes; holds public keys only, never private ones."""

    async def add_key(self, key: StoredKey) -> None: ...

    async def list_keys(self) -> list[StoredKey]: ...

    async def remove_keys(self, kids: Sequence[str]) -> None: ...

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        """Raises ServiceUnavailableError when the store cannot be reached."""
        ...


class MemoryKeyStore:
    """Per-process store (``auth.keyStore.provider: memory``)."""

    def __init__(self) -> None:
        self._keys: dict[str, StoredKey] = {}

    async def add_key(self, key: StoredKey) -> None:
        self._keys[key.kid] = key

    async def list_keys(self) -> list[StoredKey]:
        return list(self._keys.values())

    async def remove_keys(self, kids: Sequence[str]) -> None:
        for kid in kids:
            self._keys.pop(kid, None)

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        return None
