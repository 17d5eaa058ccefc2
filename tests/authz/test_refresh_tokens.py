"""Refresh-token hashes: Backstage's scrypt ones (made here by Node's crypto.scrypt with
Backstage's parameters, as its lib/refreshToken does) verify, and a rotation replaces
one with ours, so each Backstage-issued token pays scrypt once."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.authz.offline import OfflineSessions
from app.authz.refresh_tokens import TokenHasher, derive_key
from app.authz.store import to_datetime
from app.config.authorization import RefreshTokenSettings
from app.db.engine import create_database_engine
from app.db.migrate import migrate
from app.db.schema import offline_sessions
from tests.fakes.clock import FakeClock

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

    def matches(self, token: str, stored: str | None) -> bool:
        if not self.is_cheap(stored):
            self.scrypt_threads.append(threading.current_thread())
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


def test_rotation_replaces_a_backstage_hash_with_ours(tmp_path: Path) -> None:
    asyncio.run(_rotate_a_backstage_grant(tmp_path))


async def _rotate_a_backstage_grant(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}")
    clock = FakeClock()
    hasher = _ThreadRecordingHasher([derive_key("secret")])
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
