"""Refresh-token hashes: HMAC-SHA256 keyed from ``auth.session.secret`` (previous secrets
still verify), and hashes Backstage wrote with scrypt still verify."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.authz.errors import from_error
from app.authz.offline import OfflineSessions
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.authz.store import to_datetime
from app.config.authorization import RefreshTokenSettings
from app.core.errors import ServiceUnavailableError
from app.db.engine import create_database_engine
from app.db.migrate import migrate
from app.db.schema import offline_sessions
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio

# Written by Backstage 0.31's own lib/refreshToken (generateRefreshToken) on the peer.
BACKSTAGE_TOKEN = "3b1c5a55-0f3c-4a8e-9d55-0c6c8a1e2f10.USw0k5ms8rkPMHKZyNBcJNfquVMnytZnHF-y38G7IZE"
BACKSTAGE_HASH = (
    "71uS0Ne9r7YoEPqRQckhHA==.7zWOs232Y2blS6fpQi6eNu6E6VvLdX4YPH3Knrq25pjmQN1XZvtxugWg2K3dWhbuPzPZ"
    "VAXEe7HXBeXQAYIzpw=="
)


def test_hashes_are_keyed_by_the_session_secret() -> None:
    hasher = TokenHasher([derive_key("current-secret")])
    token, stored = hasher.new_token("session-id")
    assert token.startswith("session-id.") and token not in stored
    assert stored.startswith("hmac-sha256:")
    assert hasher.matches(token, stored)
    assert not hasher.matches(token + "x", stored)
    # A database leak without the secret: another key cannot tell the token.
    assert not TokenHasher([derive_key("another-secret")]).matches(token, stored)
    # After a rotation of the secret, the previous one still verifies.
    rotated = TokenHasher([derive_key("next-secret"), derive_key("current-secret")])
    assert rotated.matches(token, stored)
    assert rotated.hash(token) != stored


def test_backstage_scrypt_hashes_still_verify() -> None:
    hasher = TokenHasher([derive_key("any-secret")])
    assert hasher.matches(BACKSTAGE_TOKEN, BACKSTAGE_HASH)
    assert not hasher.matches(BACKSTAGE_TOKEN[:-1] + "A", BACKSTAGE_HASH)
    assert not hasher.matches(BACKSTAGE_TOKEN, "not-base64!.also-not")
    assert not hasher.matches(BACKSTAGE_TOKEN, None)


def test_an_unreachable_database_is_temporarily_unavailable() -> None:
    error = from_error(ServiceUnavailableError("Offline session store unavailable: down"))
    assert (error.status, error.code) == (503, "temporarily_unavailable")


# salt (16 random bytes) "." scrypt(token, salt, 64, N=16384 r=8 p=1), both base64: the
# format Backstage 0.31 writes to offline_sessions.token_hash.
_NODE_SCRYPT = """
const crypto = require('node:crypto');
const salt = crypto.randomBytes(16);
crypto.scrypt(process.argv[1], salt, 64, { N: 16384, r: 8, p: 1 }, (err, key) => {
  if (err) throw err;
  process.stdout.write(`${salt.toString('base64')}.${key.toString('base64')}`);
});
"""


def node_scrypt_hash(token: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed to make a Backstage refresh-token hash")
    return subprocess.run(
        [node, "-e", _NODE_SCRYPT, token], check=True, capture_output=True, text=True
    ).stdout


class _ThreadRecordingHasher(TokenHasher):
    def __init__(self, keys: list[bytes]) -> None:
        super().__init__(keys)
        self.scrypt_threads: list[threading.Thread] = []
        # Connections checked out of the pool while a token was checked against scrypt.
        self.checked_out: list[int] = []
        self.engine: Any = None

    def matches(self, token: str, stored: str | None) -> bool:
        if not self.is_cheap(stored):
            self.scrypt_threads.append(threading.current_thread())
            self.checked_out.append(self.engine.pool.checkedout())
        return super().matches(token, stored)


TOKEN = "offline-1.q3Zc5yJ0l8b8S0m7m0n3b2E4dX1bY9kQJk2VqYj6Zl0"


def test_a_backstage_hash_verifies_and_only_for_its_token() -> None:
    stored = node_scrypt_hash(TOKEN)
    hasher = TokenHasher([derive_key("secret")])
    assert hasher.matches(TOKEN, stored)
    assert not hasher.matches(TOKEN + "x", stored)
    assert not hasher.matches(TOKEN, stored.replace(".", ".AAAA", 1))
    assert not hasher.matches(TOKEN, "not-base64!.@@@")


def test_without_a_secret_a_backstage_hash_still_verifies() -> None:
    assert TokenHasher([]).matches(TOKEN, node_scrypt_hash(TOKEN))


async def test_rotation_replaces_a_backstage_hash_with_ours(tmp_path: Path) -> None:
    await _rotate_a_backstage_grant(tmp_path)


async def _rotate_a_backstage_grant(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}")
    clock = FakeClock()
    hasher = _ThreadRecordingHasher([derive_key("secret")])
    hasher.engine = engine
    store = OfflineSessions(
        engine, hasher, RefreshTokenSettings(enabled=True), clock, reuse_grace_seconds=0
    )
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(
                insert(offline_sessions).values(
                    id="offline-1",
                    user_entity_ref="user:default/ada",
                    oidc_client_id="cli",
                    token_hash=node_scrypt_hash(TOKEN),
                    created_at=to_datetime(clock.now()),
                    last_used_at=to_datetime(clock.now()),
                )
            )
        rotation = await store.rotate(TOKEN, "cli")
        # scrypt ran in a worker thread, never on the event loop's.
        assert hasher.scrypt_threads and threading.main_thread() not in hasher.scrypt_threads
        # ... and first with no transaction open: the pool's one SQLite connection is not
        # held for tens of milliseconds.
        assert hasher.checked_out[0] == 0
        async with engine.connect() as conn:
            stored = (await conn.execute(select(offline_sessions.c.token_hash))).scalar_one()
        assert stored.startswith("hmac-sha256:")
        assert hasher.matches(rotation.refresh_token, stored)
        assert (await store.rotate(rotation.refresh_token, "cli")).refresh_token
    finally:
        await engine.dispose()


def test_a_backstage_token_pays_scrypt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = node_scrypt_hash(TOKEN)
    calls: list[bytes] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kwargs: Any) -> bytes:
        calls.append(password)
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    hasher = TokenHasher([derive_key("secret")])
    # A refresh checks before and inside its transaction.
    assert hasher.matches(TOKEN, stored) and hasher.matches(TOKEN, stored)
    assert not hasher.matches(TOKEN + "x", stored)
    assert len(calls) == 2
