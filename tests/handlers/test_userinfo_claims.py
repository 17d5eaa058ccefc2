"""/v1/userinfo checks ``iss`` and ``aud`` of user tokens: with a static key shared by
several deployments, a token another deployment issued, or one minted for another
audience, is not this server's (issue 15, item 10)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.server.application import Dependencies, create_app

ISSUER = "http://localhost:7007/api/auth"


@pytest.fixture(scope="module")
def shared_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    folder = tmp_path_factory.mktemp("static-key")
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "k1.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "k1.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return folder, key


@pytest.fixture(scope="module")
def client(shared_key: tuple[Path, ec.EllipticCurvePrivateKey]) -> Iterator[TestClient]:
    folder, _ = shared_key
    keys = [{"keyId": "k1", "privateKeyFile": "k1.key", "publicKeyFile": "k1.pub"}]
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": "http://localhost:7007"},
            "auth": {
                "keyStore": {"provider": "static", "static": {"keys": keys}},
                "providers": {"guest": {}},
            },
        }
    )
    app = create_app(
        settings, development=True, deps=Dependencies(clock=SystemClock(), config_dir=folder)
    )
    with TestClient(app) as test_client:
        # Stores the guest's user info, so a token for this sub that passes gets a 200.
        assert test_client.get("/api/auth/guest/refresh").status_code == 200
        yield test_client


def _token(key: ec.EllipticCurvePrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user:development/guest",
        "ent": ["user:development/guest"],
        "aud": "backstage",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    header = {"typ": "vnd.backstage.user", "alg": "ES256", "kid": "k1"}
    return jwt.encode(header, claims, ECKey.import_key(pem))


def _userinfo(client: TestClient, token: str) -> Any:
    return client.get("/api/auth/v1/userinfo", headers={"Authorization": f"Bearer {token}"})


def test_a_token_with_this_servers_iss_and_aud_passes(
    client: TestClient, shared_key: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    response = _userinfo(client, _token(shared_key[1]))
    assert response.status_code == 200, response.text
    # An aud list that holds "backstage" is this audience too (RFC 7519 4.1.3).
    assert _userinfo(client, _token(shared_key[1], aud=["x", "backstage"])).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "claim"),
    [
        ({"iss": "https://other-deployment.example.com/api/auth"}, "iss"),
        ({"iss": None}, "iss"),
        ({"aud": "another-audience"}, "aud"),
        ({"aud": ["another-audience"]}, "aud"),
        ({"aud": None}, "aud"),
    ],
)
def test_another_issuer_or_audience_is_refused(
    client: TestClient,
    shared_key: tuple[Path, ec.EllipticCurvePrivateKey],
    overrides: dict[str, Any],
    claim: str,
) -> None:
    response = _userinfo(client, _token(shared_key[1], **overrides))
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["name"] == "AuthenticationError"
    assert error["message"].startswith("Failed user token verification")
    assert claim in error["message"]
