"""CPU of the parts of a refresh grant, each alone in one process (no HTTP):

    .venv/bin/python bench/refresh_grant_parts.py [--count 2000] [--rounds 3]

* the rotation: ``OfflineSessions.rotate`` of a client's current token on in-memory
  SQLite through SQLAlchemy and aiosqlite (one ``UPDATE ... RETURNING``), and a bare
  ``SELECT 1`` on the same engine (the driver's floor per statement);
* the user token: ``TokenIssuer.issue_token`` (two ES256 signatures: the token and its
  ``uip``);
* the refresh token: a new random token and its HMAC-SHA256, plus the presented one's.

With ``refresh_grant.py``'s liveness GET and no-op POST, these account for a grant.
Process CPU (this thread and aiosqlite's), lowest of ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.authz.offline import OfflineSessions  # noqa: E402
from app.authz.refresh_tokens import TokenHasher, derive_key  # noqa: E402
from app.config.authorization import RefreshTokenSettings  # noqa: E402
from app.core.clock import SystemClock  # noqa: E402
from app.db.engine import create_database_engine  # noqa: E402
from app.db.migrate import migrate  # noqa: E402
from app.identity.keys import MemoryKeyStore  # noqa: E402
from app.identity.tokens import TokenIssuer  # noqa: E402


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _per_call(call: Callable[[], Awaitable[object]], count: int, rounds: int) -> float:
    for _ in range(count // 10):
        await call()
    best = float("inf")
    for _ in range(rounds):
        started = _cpu()
        for _ in range(count):
            await call()
        best = min(best, (_cpu() - started) * 1000 / count)
    return best


async def main(count: int, rounds: int) -> None:
    clock = SystemClock()
    engine = create_database_engine("sqlite+aiosqlite:///:memory:")
    await migrate(engine)
    hasher = TokenHasher([derive_key("bench-session-secret")])
    sessions = OfflineSessions(
        engine, hasher, RefreshTokenSettings(enabled=True), clock, reuse_grace_seconds=5
    )
    token = await sessions.issue("user:development/guest", "bench-cli")

    async def rotate() -> None:
        nonlocal token
        rotation = await sessions.rotate(token, "bench-cli", entitled_client="bench-cli")
        token = rotation.refresh_token

    async def select_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth", key_store=MemoryKeyStore(), clock=clock
    )

    async def issue() -> None:
        await issuer.issue_token(sub="user:development/guest", ent=(), record_user_info=False)

    async def hashes() -> None:
        new, _ = hasher.new_token("0b5d0c1e-3d4f-4c59-9a57-4f0a5d3f1a2b")
        hasher.hash(new)

    parts = {
        "rotation (UPDATE ... RETURNING, SQLAlchemy + aiosqlite)": rotate,
        "SELECT 1 on the same engine (per-statement floor)": select_one,
        "user token (two ES256 signatures)": issue,
        "refresh token and hashes": hashes,
    }
    try:
        for name, call in parts.items():
            print(f"{await _per_call(call, count, rounds):7.3f} ms  {name}")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.rounds))
