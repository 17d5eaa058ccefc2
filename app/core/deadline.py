"""One deadline for a whole operation against an identity provider.

Each call has its own timeout, but a sign-in or a refresh makes several (token, then
profile, keys, a token exchange): without an overall deadline, a refresh could take twice
the configured figure. The deadline covers all of them; when it passes, the operation is
cancelled and the user gets Backstage's 503 naming the figure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from app.core.errors import ServiceUnavailableError

T = TypeVar("T")


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
