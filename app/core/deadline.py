"""Deadlines: one for an operation against an identity provider, one for a whole request.

Each call has its own timeout, but a sign-in or a refresh makes several (token, then
profile, keys, a token exchange): without an overall deadline, a refresh could take twice
the configured figure. ``within_deadline`` covers the identity provider's part; when it
passes, the operation is cancelled and the user gets Backstage's 503 naming the figure.

``request_deadline`` covers everything one incoming request does (the identity provider,
the catalog and its retries, the user-info write): its expiry cancels whatever is running
and answers the same 503. While it runs, ``time_left`` tells the outbound transport how
long a call may still take, so that each call gets the smaller of its own timeout and the
time left (``capped``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import TypeVar

from app.core.errors import ServiceUnavailableError

T = TypeVar("T")

# The event loop's time at which the current request's deadline passes.
_REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)


async def within_deadline(seconds: float, operation: Awaitable[T], failure: str) -> T:
    """``operation``'s result, or a ``ServiceUnavailableError`` (503) after ``seconds``."""
    try:
        async with asyncio.timeout(seconds) as scope:
            return await operation
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise ServiceUnavailableError(
            f"{failure}, the identity provider did not answer within {seconds:g} seconds"
        ) from exc


@contextlib.asynccontextmanager
async def request_deadline(seconds: float, failure: str) -> AsyncIterator[None]:
    """Everything inside finishes within ``seconds`` or is cancelled, raising a
    ``ServiceUnavailableError`` (503). A deadline inside another keeps the earlier one."""
    loop = asyncio.get_running_loop()
    at = loop.time() + seconds
    outer = _REQUEST_DEADLINE.get()
    token = _REQUEST_DEADLINE.set(at if outer is None else min(at, outer))
    try:
        async with asyncio.timeout_at(at) as scope:
            yield
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise ServiceUnavailableError(
            f"{failure}, the request did not complete within {seconds:g} seconds"
        ) from exc
    finally:
        _REQUEST_DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds until the current request's deadline; None outside one."""
    at = _REQUEST_DEADLINE.get()
    if at is None:
        return None
    return max(0.0, at - asyncio.get_running_loop().time())


def capped(seconds: float) -> float:
    """``seconds``, or less when the current request's deadline comes sooner (never 0,
    which clients read as "no limit")."""
    left = time_left()
    return seconds if left is None else max(min(seconds, left), 0.001)
