"""Database failures as Backstage errors: a store that cannot reach its database answers
503 ``ServiceUnavailableError``, never a driver exception.

The HTTP message says what failed, not where the database is; the driver's own words go
to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.core.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

# Connecting is bounded by the engine's connect timeout; this bounds a whole operation
# (pool checkout, connect, query) against a database that accepts but never answers.
DEFAULT_OPERATION_TIMEOUT_SECONDS = 10.0

T = TypeVar("T")
# Operations given up on, still unwinding: referenced until they finish.
_ABANDONED: set[asyncio.Task[object]] = set()


def describe_database_error(exc: BaseException) -> str:
    """The driver's first line, without the SQL statement or its parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


async def bounded(
    what: str,
    operation: Callable[[], Awaitable[T]],
    *,
    timeout_seconds: float = DEFAULT_OPERATION_TIMEOUT_SECONDS,
) -> T:
    """Run ``operation`` with a deadline that holds, cancellation included.

    A cancelled psycopg query first asks the server to cancel it (up to 5 s), then waits
    for the connection (another 5 s): under ``asyncio.timeout`` a frozen server turned a
    10 s deadline into 20 s. Here the operation runs in its own task; at the deadline the
    caller gets the 503 at once, and the task is cancelled and left to unwind.

    Raises:
        ServiceUnavailableError: ``"<what> unavailable: ..."``.
    """

    async def translated() -> T:
        try:
            return await operation()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("%s: database error: %s", what, describe_database_error(exc))
            raise ServiceUnavailableError(f"{what} unavailable: {_reason(exc)}") from exc

    task = asyncio.ensure_future(translated())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_seconds)
    except asyncio.CancelledError:
        task.cancel()
        _abandon(task)
        raise
    if task in done:
        return task.result()
    task.cancel()
    _abandon(task)
    log.warning("%s: the database did not answer within %gs", what, timeout_seconds)
    raise ServiceUnavailableError(
        f"{what} unavailable: the database did not answer within {timeout_seconds:g}s"
    )


def _abandon(task: asyncio.Task[T]) -> None:
    _ABANDONED.add(task)

    def forget(done: asyncio.Task[T]) -> None:
        _ABANDONED.discard(done)
        if not done.cancelled():
            done.exception()  # retrieved: an abandoned failure is no "never retrieved"

    task.add_done_callback(forget)


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
