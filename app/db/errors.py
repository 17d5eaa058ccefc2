"""Database failures as Backstage errors: a store that cannot reach its database answers
503 ``ServiceUnavailableError``, never a driver exception.

The HTTP message says what failed, not where the database is; the driver's own words go
to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.core.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

# Connecting is bounded by the engine's connect timeout; this bounds a whole operation
# (pool checkout, connect, query) against a database that accepts but never answers.
DEFAULT_OPERATION_TIMEOUT_SECONDS = 10.0


def describe_database_error(exc: BaseException) -> str:
    """The driver's first line, without the SQL statement or its parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


@asynccontextmanager
async def database_errors(
    what: str, *, timeout_seconds: float = DEFAULT_OPERATION_TIMEOUT_SECONDS
) -> AsyncIterator[None]:
    """Run the body under a deadline; turn database failures into 503s naming ``what``.

    Raises:
        ServiceUnavailableError: ``"<what> unavailable: ..."``.
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            yield
    except TimeoutError as exc:
        log.warning("%s: the database did not answer within %gs", what, timeout_seconds)
        raise ServiceUnavailableError(
            f"{what} unavailable: the database did not answer within {timeout_seconds:g}s"
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        log.warning("%s: database error: %s", what, describe_database_error(exc))
        raise ServiceUnavailableError(f"{what} unavailable: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "the database connection was lost"
    name = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
    if name in (
        "OperationalError",
        "InterfaceError",
        "ConnectionTimeout",
        "TimeoutError",
    ) or isinstance(exc, OSError):
        return "cannot reach the database"
    return f"database error ({name})"
