"""The keys of our plugin tokens, as Backstage's plugin key sources keep them.

* ``DatabasePluginKeys`` (the default): a key pair generated per process and per hour;
  its public JWK goes to ``backstage_backend_public_keys__keys`` (``id``, ``key`` as JSON
  text, ``expires_at`` as an ISO string three key lifetimes ahead), the table and rows of
  Backstage's ``DatabaseKeyStore``: instances of Backstage's and of ours on one database
  publish each other's keys. Expired rows are deleted when the keys are listed.
* ``StaticPluginKeys`` (``backend.auth.pluginKeyStore.type: static``): PEM files; the
  first key signs, all are published.

Without a database (embedded use, tests) the public keys stay in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.plugin_keys import CONFIG_PATH
from app.config.validation import ConfigError
from app.core.clock import Clock
from app.db.errors import bounded
from app.db.schema import plugin_public_keys

log = logging.getLogger(__name__)

# Backstage's authServiceFactory: keyDuration { hours: 1 }; rows outlive it 3 times.
PLUGIN_KEY_DURATION_SECONDS = 3600
KEY_EXPIRATION_MARGIN_FACTOR = 3
PLUGIN_KEY_ALGORITHM = "ES256"
_EC = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass(frozen=True)
class PluginSigningKey:
    kid: str
    algorithm: str
    private_key: ECKey | RSAKey


class PluginKeySource(Protocol):
    async def signing_key(self) -> PluginSigningKey: ...

    async def public_keys(self) -> list[dict[str, Any]]: ...


def _iso(epoch: float) -> str:
    # Date.prototype.toISOString: milliseconds and a Z.
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _epoch(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        # new Date('garbage') is an Invalid Date, never "in the past": kept as Backstage does.
        return float("inf")


class PublicKeyRows(Protocol):
    async def add(self, kid: str, jwk: Mapping[str, Any], expires_at: float) -> None: ...

    async def valid(self, now: float) -> list[dict[str, Any]]: ...


class MemoryPublicKeyRows:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[dict[str, Any], float]] = {}

    async def add(self, kid: str, jwk: Mapping[str, Any], expires_at: float) -> None:
        self._rows[kid] = (dict(jwk), expires_at)

    async def valid(self, now: float) -> list[dict[str, Any]]:
        for kid in [k for k, (_, exp) in self._rows.items() if exp < now]:
            del self._rows[kid]
        return [jwk for jwk, _ in self._rows.values()]


class DatabasePublicKeyRows:
    """Rows of ``backstage_backend_public_keys__keys``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, kid: str, jwk: Mapping[str, Any], expires_at: float) -> None:
        row = {
            "id": kid,
            "key": json.dumps(dict(jwk), separators=(",", ":")),
            "expires_at": _iso(expires_at),
        }

        async def insert_row() -> None:
            async with self._engine.begin() as conn:
                await conn.execute(insert(plugin_public_keys).values(row))

        await bounded("Plugin key store", insert_row)

    async def valid(self, now: float) -> list[dict[str, Any]]:
        async def read() -> list[tuple[str, str, str]]:
            async with self._engine.connect() as conn:
                result = await conn.execute(select(plugin_public_keys))
                return [(r.id, r.key, r.expires_at) for r in result]

        rows = await bounded("Plugin key store", read)
        keys: list[dict[str, Any]] = []
        expired: list[str] = []
        for kid, text, expires_at in rows:
            if _epoch(expires_at) < now:
                expired.append(kid)
                continue
            try:
                keys.append(json.loads(text))
            except ValueError:
                log.warning("plugin key %s: stored key is not JSON; not published", kid)
        if expired:
            log.info("Removing expired plugin service keys, '%s'", "', '".join(expired))
            try:
                await bounded("Plugin key store", lambda: self._delete(expired))
            except Exception:
                # Housekeeping; publishing the valid keys matters more.
                log.exception("Failed to remove expired plugin service keys")
        return keys

    async def _delete(self, kids: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(plugin_public_keys).where(plugin_public_keys.c.id.in_(kids)))


class DatabasePluginKeys:
    """A key per process and per hour, published before it signs."""

    def __init__(
        self,
        rows: PublicKeyRows,
        clock: Clock,
        *,
        algorithm: str = PLUGIN_KEY_ALGORITHM,
        key_duration_seconds: int = PLUGIN_KEY_DURATION_SECONDS,
    ) -> None:
        self._rows = rows
        self._clock = clock
        self._algorithm = algorithm
        self._duration = key_duration_seconds
        self._current: tuple[PluginSigningKey, float] | None = None
        self._lock = asyncio.Lock()

    async def signing_key(self) -> PluginSigningKey:
        current = self._current
        if current is not None and current[1] > self._clock.now():
            return current[0]
        async with self._lock:
            current = self._current
            now = self._clock.now()
            if current is not None and current[1] > now:
                return current[0]
            if current is not None:
                log.info("Signing key has expired, generating new key")
            private = ECKey.generate_key(_EC[self._algorithm])
            kid = str(uuid.uuid4())
            public = {**private.as_dict(private=False), "kid": kid, "alg": self._algorithm}
            await self._rows.add(kid, public, now + self._duration * KEY_EXPIRATION_MARGIN_FACTOR)
            log.info("Created new signing key %s", kid)
            key = PluginSigningKey(kid, self._algorithm, private)
            self._current = (key, now + self._duration)
            return key

    async def public_keys(self) -> list[dict[str, Any]]:
        return await self._rows.valid(self._clock.now())


class StaticPluginKeys:
    def __init__(self, signing: PluginSigningKey, public: Sequence[dict[str, Any]]) -> None:
        self._signing = signing
        self._public = [dict(k) for k in public]

    async def signing_key(self) -> PluginSigningKey:
        return self._signing

    async def public_keys(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self._public]


def _read_key(base_dir: Path, file: Any, algorithm: str, where: str) -> ECKey | RSAKey:
    if not isinstance(file, str):
        raise ConfigError(f"{where}: must be a file path")
    try:
        pem = (base_dir / file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read key file: {exc.strerror}") from exc
    key_type = ECKey if algorithm in _EC else RSAKey
    try:
        return key_type.import_key(pem)
    except (JoseError, ValueError) as exc:
        raise ConfigError(f"{where}: not a {algorithm} PEM key ({exc})") from exc


def load_static_plugin_keys(
    entries: Sequence[Mapping[str, Any]], *, base_dir: Path
) -> StaticPluginKeys:
    """Raises ConfigError naming the entry that cannot be used."""
    public: list[dict[str, Any]] = []
    signing: PluginSigningKey | None = None
    for i, entry in enumerate(entries):
        where = f"{CONFIG_PATH}.static.keys[{i}]"
        kid = entry.get("keyId")
        if not isinstance(kid, str) or not kid:
            raise ConfigError(f"{where}.keyId: required")
        algorithm = str(entry.get("algorithm", PLUGIN_KEY_ALGORITHM))
        key = _read_key(base_dir, entry.get("publicKeyFile"), algorithm, f"{where}.publicKeyFile")
        public.append({**key.as_dict(private=False), "kid": kid, "alg": algorithm})
        if i == 0:
            private = _read_key(
                base_dir, entry.get("privateKeyFile"), algorithm, f"{where}.privateKeyFile"
            )
            if private.as_dict(private=False) != key.as_dict(private=False):
                raise ConfigError(
                    f"{where}: publicKeyFile is not the public half of privateKeyFile"
                )
            signing = PluginSigningKey(kid, algorithm, private)
    if signing is None:
        raise ConfigError(f"{CONFIG_PATH}.static.keys: at least one key pair is required")
    return StaticPluginKeys(signing, public)
