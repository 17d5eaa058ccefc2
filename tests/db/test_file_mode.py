"""The SQLite database file, and its -wal and -shm files, are created 0600: they hold
user info (issue 15, item 15: they were 0644, readable by every local user)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db.database import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_database_and_its_wal_files_are_private(
    tmp_path: Path, usual_umask: None
) -> None:
    data = tmp_path / "data"
    database = Database.from_backstage_config(None, data_dir=data)

    await database.start()
    async with database.engine.connect() as conn:
        # An open connection in WAL mode keeps the -wal and -shm files.
        await conn.execute(text("SELECT 1"))
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in sorted(data.iterdir())}
    await database.close()
    assert modes == {"auth.sqlite": 0o600, "auth.sqlite-shm": 0o600, "auth.sqlite-wal": 0o600}


async def test_an_existing_file_keeps_its_mode(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "shared.sqlite"
    path.touch(mode=0o640)
    database = Database(f"sqlite+aiosqlite:///{path}")

    async def scenario() -> None:
        await database.start()
        await database.close()

    await scenario()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
