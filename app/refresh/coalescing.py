"""One upstream refresh per session, however many requests race for it.

Identity providers that rotate refresh tokens and detect reuse (Keycloak, oidc-provider,
Okta, ...) revoke the whole grant when a rotated-away token is presented again. Several
tabs, or a reload during a refresh, present the same cookie at once, and with Backstage
the losers log the user out (backstage#12917). Here concurrent refreshes of one session
share a single upstream call, and its result is reused for a short grace window, so
requests that arrive just behind it get the rotated session too.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from app.core.clock import Clock
from app.providers.base import AuthResult

T = TypeVar("T")
DEFAULT_GRACE_SECONDS = 5.0


def session_key(provider_id: str, env: str, refresh_token: str, scope: str) -> str:
    # A digest, so the coordinator (and any shared store) never holds the token itself.
    # The scope is part of it: a result must never answer a request for more scope than
    # it was refreshed (and, for GitHub OAuth Apps, checked) for.
    raw = f"{provider_id}\0{env}\0{refresh_token}\0{scope}"
    return hashlib.sha256(raw.encode()).hexdigest()


class RefreshCoordinator(Protocol):
    async def run(
        self, key: str, refresh: Callable[[], Awaitable[AuthResult]]
    ) -> tuple[AuthResult, bool]:
        """The refresh result, and whether it was another request's (reused)."""
        ...


@dataclass
class _Entry:
    task: asyncio.Future[Any]
    done_at: float | None = None


class InProcessRefreshCoordinator:
    """Coalesces within one process (one event loop)."""

    def __init__(self, clock: Clock, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self._clock = clock
        self._grace = grace_seconds
        self._entries: dict[str, _Entry] = {}

    def _prune(self, now: float) -> None:
        expired = [
            k
            for k, e in self._entries.items()
            if e.done_at is not None and now - e.done_at > self._grace
        ]
        for key in expired:
            del self._entries[key]

    async def run(self, key: str, refresh: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        now = self._clock.now()
        self._prune(now)
        entry = self._entries.get(key)
        reused = entry is not None
        if entry is None:
            entry = _Entry(asyncio.ensure_future(refresh()))
            self._entries[key] = entry

            def finished(task: asyncio.Future[Any], entry: _Entry = entry) -> None:
                if task.cancelled() or task.exception() is not None:
                    # Failures are not reused: the next request may succeed.
                    self._entries.pop(key, None)
                else:
                    entry.done_at = self._clock.now()

            entry.task.add_done_callback(finished)
        # shield: a caller that goes away does not cancel the refresh the others wait for.
        return cast(T, await asyncio.shield(entry.task)), reused
