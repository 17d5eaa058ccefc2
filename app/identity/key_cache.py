"""An in-process cache of a shared key store's key list (``auth.keyStore.provider:
database``), so that the JWKS endpoint does not read the database on every request.

Stale-while-revalidate: a list younger than ``refresh_seconds`` is served as is; an older
one is still served while one background reload runs. A list is never served once it is
``max_age`` (2 x ``refresh_seconds``) old: callers then wait for a reload that started
after they arrived. So every list served at time t reflects the store as it was at
t - max_age or later, whatever the reload latency; a signer that publishes a key at least
``max_age`` before its first signature (``TokenIssuer``'s ``publish_delay``, taken from
``publish_delay`` here) can therefore never sign a token that another instance's JWKS
lacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from app.core.clock import Clock
from app.identity.keys import KeyStore, StoredKey

logger = logging.getLogger(__name__)

# A reload (~1 ms of CPU) at most 20 times a second per process costs ~2 % of a core
# under a JWKS flood (and nothing when JWKS is idle, as it mostly is: verifiers cache it),
# and keeps the publish delay of new keys (2 x this, 0.1 s) short: that is what a
# process's first sign-in may wait, after a start.
REFRESH_SECONDS = 0.05

_Write = Callable[[dict[str, StoredKey]], None]


class CachedKeyStore:
    """A ``KeyStore`` that answers ``list_keys`` from memory; writes go through."""

    def __init__(
        self,
        store: KeyStore,
        clock: Clock,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        exclusive: bool = False,
    ) -> None:
        """``exclusive``: no other process can write to ``store`` (an in-memory database):
        the write-through list is then always complete and new keys need no publish delay."""
        self._store = store
        self._exclusive = exclusive
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._max_age = 2 * refresh_seconds
        # By kid, in the store's order; None until loaded and after a failed load.
        self._keys: dict[str, StoredKey] | None = None
        # When the load behind _keys started: the list is at least as new as this.
        self._loaded_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        # This process's writes since the running load started, replayed onto its result
        # (its query may have run before they were committed).
        self._writes: list[_Write] | None = None

    @property
    def publish_delay(self) -> float:
        """How long a new key must be in the store before it signs: the staleness bound."""
        return 0.0 if self._exclusive else self._max_age

    async def add_key(self, key: StoredKey) -> None:
        await self._store.add_key(key)
        self._write(lambda keys: keys.__setitem__(key.kid, key))

    async def remove_keys(self, kids: Sequence[str]) -> None:
        await self._store.remove_keys(kids)
        removed = list(kids)

        def remove(keys: dict[str, StoredKey]) -> None:
            for kid in removed:
                keys.pop(kid, None)

        self._write(remove)

    async def ping(self) -> None:
        # Readiness must see the database itself, never the cache.
        await self._store.ping()

    async def list_keys(self) -> list[StoredKey]:
        arrival = self._clock.now()
        while True:
            keys = self._keys
            if keys is not None:
                age = arrival - self._loaded_at
                if age < self._max_age:
                    if age >= self._refresh_seconds:
                        self._start_load()
                    return list(keys.values())
            # Too old, never loaded or dropped: wait for a load (one for all callers). One
            # that started before arrival - max_age may be too old too: then loop, and the
            # next load starts after arrival.
            await asyncio.shield(self._start_load())

    async def aclose(self) -> None:
        """Cancel a reload in progress (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _write(self, apply: _Write) -> None:
        if self._keys is not None:
            apply(self._keys)
        if self._writes is not None:
            self._writes.append(apply)

    def _start_load(self) -> asyncio.Task[None]:
        loop = asyncio.get_running_loop()
        task = self._task
        # A task of another (closed) loop can never finish here.
        if task is not None and not task.done() and task.get_loop() is loop:
            return task
        task = loop.create_task(self._load())
        task.add_done_callback(self._load_done)
        self._task = task
        return task

    async def _load(self) -> None:
        started = self._clock.now()
        writes: list[_Write] = []
        self._writes = writes
        try:
            loaded = await self._store.list_keys()
        except BaseException:
            # A list that can no longer be refreshed is dropped rather than served on: the
            # next caller loads synchronously and sees the store's error (the JWKS answers
            # 503, like readiness, while the database is unreachable) instead of a list that
            # may lack keys other instances publish meanwhile. The failure stays hidden only
            # while the reload that finds it runs, and never past max_age.
            self._keys = None
            raise
        finally:
            if self._writes is writes:
                self._writes = None
        keys = {key.kid: key for key in loaded}
        for apply in writes:
            apply(keys)
        self._keys, self._loaded_at = keys, started

    def _load_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        # Retrieved here so that a background reload nobody awaited never ends up as
        # "Task exception was never retrieved".
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("Loading the signing keys failed: %s", exc)
