"""The auth plugin's database as the application holds it: built from config without
I/O, started (created if missing, migrated) in the lifespan, closed on shutdown."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import ServiceUnavailableError
from app.db.engine import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    create_database_engine,
    database_target_from_backstage,
    is_memory_sqlite,
)
from app.db.errors import describe_database_error
from app.db.migrate import ensure_database_exists, migrate


class Database:
    def __init__(
        self,
        url: str,
        *,
        ensure_exists: bool = True,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.ensure_exists = ensure_exists
        self.engine: AsyncEngine = create_database_engine(
            url, connect_timeout_seconds=connect_timeout_seconds
        )

    @property
    def is_in_memory(self) -> bool:
        """Only this process can ever see it (SQLite ``:memory:``)."""
        return is_memory_sqlite(self.url)

    @property
    def is_shared(self) -> bool:
        """A server database several instances can share (not a local SQLite file)."""
        return not self.url.startswith("sqlite")

    @classmethod
    def from_backstage_config(
        cls, database_config: Mapping[str, Any] | None, *, data_dir: Path
    ) -> Database:
        """From ``backend.database`` (``None`` when absent).

        Raises:
            ConfigError: naming the ``backend.database...`` key that cannot be used.
        """
        target = database_target_from_backstage(database_config, data_dir=data_dir)
        return cls(target.url, ensure_exists=target.ensure_exists)

    async def start(self) -> None:
        """Create the database if missing and configured so, then migrate.

        Raises:
            ServiceUnavailableError: the database cannot be reached or migrated; the
                message carries the driver's reason (it is meant for the startup log).
        """
        try:
            if self.ensure_exists:
                await ensure_database_exists(self.engine)
            await migrate(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            name = self.engine.url.database or ""
            raise ServiceUnavailableError(
                f"Cannot prepare the auth database '{name}': {describe_database_error(exc)}"
            ) from exc

    async def close(self) -> None:
        await self.engine.dispose()
