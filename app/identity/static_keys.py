"""``auth.keyStore.provider: static``: mounted key pairs instead of generated ones.

As Backstage's StaticKeyStore: ``auth.keyStore.static.keys[]`` of ``publicKeyFile``
(SPKI PEM), ``privateKeyFile`` (PKCS#8 PEM), ``keyId`` and ``algorithm`` (default ES256);
the first key signs, all are published (with ``"use": "sig"``), nothing rotates. This is
what multi-instance deployments behind aggressive JWKS caches use (backstage#19649).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from app.config.validation import ConfigError
from app.identity.keys import StoredKey

_EC_ALGORITHMS = {"ES256", "ES384", "ES512"}


@dataclass(frozen=True)
class StaticKey:
    kid: str
    algorithm: str
    private_key: ECKey | RSAKey
    public_jwk: dict[str, Any]


def load_static_keys(
    entries: Sequence[dict[str, Any]], *, base_dir: Path, path: str
) -> list[StaticKey]:
    """Raises ConfigError naming the entry that cannot be used."""
    if not entries:
        raise ConfigError(f"{path}: at least one key is required")
    keys: list[StaticKey] = []
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        try:
            kid = str(entry["keyId"])
            algorithm = str(entry.get("algorithm", "ES256"))
            private_pem = (base_dir / entry["privateKeyFile"]).read_bytes()
            public_pem = (base_dir / entry["publicKeyFile"]).read_bytes()
        except KeyError as exc:
            raise ConfigError(f"{where}.{exc.args[0]}: required") from exc
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read key file: {exc.strerror}") from exc
        key_type = ECKey if algorithm in _EC_ALGORITHMS else RSAKey
        try:
            private = key_type.import_key(private_pem)
            public = key_type.import_key(public_pem)
        except (JoseError, ValueError) as exc:
            raise ConfigError(f"{where}: not a {algorithm} PEM key pair ({exc})") from exc
        if private.as_dict(private=False) != public.as_dict(private=False):
            raise ConfigError(f"{where}: publicKeyFile is not the public half of privateKeyFile")
        jwk = {**public.as_dict(private=False), "kid": kid, "alg": algorithm, "use": "sig"}
        keys.append(StaticKey(kid=kid, algorithm=algorithm, private_key=private, public_jwk=jwk))
    return keys


class StaticKeyStore:
    """Publishes the configured public keys; never stores or removes anything."""

    def __init__(self, keys: Sequence[StaticKey]) -> None:
        # They never expire from the JWKS.
        self._stored = [StoredKey(k.kid, k.public_jwk, float("inf")) for k in keys]

    async def add_key(self, key: StoredKey) -> None:
        raise RuntimeError("static key stores do not accept generated keys")

    async def list_keys(self) -> list[StoredKey]:
        return list(self._stored)

    async def remove_keys(self, kids: Sequence[str]) -> None:
        return None

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        return None
