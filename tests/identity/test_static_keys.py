"""auth.keyStore.provider: static (mounted key pairs; the first signs; no rotation)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.identity.static_keys import StaticKeyStore, load_static_keys
from app.identity.tokens import TokenIssuer
from app.server.application import create_app
from app.server.wiring import Dependencies

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t


def _write_pair(folder: Path, name: str) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / f"{name}.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return {"keyId": name, "privateKeyFile": f"{name}.key", "publicKeyFile": f"{name}.pub"}


async def test_the_first_key_signs_for_ever_and_all_are_published(tmp_path: Path) -> None:
    entries = [_write_pair(tmp_path, "current"), _write_pair(tmp_path, "previous")]
    keys = load_static_keys(entries, base_dir=tmp_path, path="auth.keyStore.static.keys")
    clock = Clock()
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth",
        key_store=StaticKeyStore(keys),
        clock=clock,
        static_key=keys[0],
    )

    first = await issuer.issue_token(sub="user:default/a", ent=[])
    clock.t += 10 * 86400  # far past any rotation
    later = await issuer.issue_token(sub="user:default/a", ent=[])
    published = await issuer.list_public_keys()
    assert [k["kid"] for k in published] == ["current", "previous"]
    assert all(k["use"] == "sig" and k["alg"] == "ES256" for k in published)
    keyset = KeySet.import_key_set({"keys": published})
    for token in (first, later):
        decoded = jwt.decode(token, keyset, algorithms=["ES256"])
        assert decoded.header["kid"] == "current"


def test_mismatched_or_missing_files_stop_the_start(tmp_path: Path) -> None:
    a, b = _write_pair(tmp_path, "a"), _write_pair(tmp_path, "b")
    with pytest.raises(ConfigError, match=r"keys\[0\]: publicKeyFile is not the public half"):
        load_static_keys(
            [{**a, "publicKeyFile": b["publicKeyFile"]}], base_dir=tmp_path, path="keys"
        )
    with pytest.raises(ConfigError, match=r"keys\[0\]: cannot read key file"):
        load_static_keys([{**a, "privateKeyFile": "nope.key"}], base_dir=tmp_path, path="keys")
    with pytest.raises(ConfigError, match=r"keys\[0\]\.keyId: required"):
        load_static_keys(
            [{k: v for k, v in a.items() if k != "keyId"}], base_dir=tmp_path, path="keys"
        )
    with pytest.raises(ConfigError, match="at least one key"):
        load_static_keys([], base_dir=tmp_path, path="keys")


def test_configured_through_app_config(tmp_path: Path) -> None:
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": "http://localhost:7007"},
            "auth": {
                "keyStore": {
                    "provider": "static",
                    "static": {"keys": [_write_pair(tmp_path, "k1")]},
                },
                "providers": {"guest": {}},
            },
        }
    )
    app = create_app(
        settings, development=True, deps=Dependencies(clock=Clock(), config_dir=tmp_path)
    )
    with TestClient(app) as client:
        token = client.get("/api/auth/guest/refresh").json()["backstageIdentity"]["token"]
        keys = client.get("/api/auth/.well-known/jwks.json").json()
    assert [k["kid"] for k in keys["keys"]] == ["k1"]
    assert (
        jwt.decode(token, KeySet.import_key_set(keys), algorithms=["ES256"]).header["kid"] == "k1"
    )
