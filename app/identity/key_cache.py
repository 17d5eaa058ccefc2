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

While the store cannot be read (a database outage), the last list loaded is served
instead of a 503, after at most ``LAST_KNOWN_WAIT_SECONDS`` for the reload that finds the
outage, and at once after that. Verifiers keep verifying every token signed with a key
published before the outage; no key can be published during it (publishing writes to the
same store), so only one published in the last ``max_age`` before it can be missing.
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
# How long a caller waits for a reload before the last list loaded is served instead.
LAST_KNOWN_WAIT_SECONDS = 1.0
# During an outage, reloads are retried at most this often (not once per request).
OUTAGE_RETRY_SECONDS = 0.5

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
        # The last list loaded, served while the store cannot be read; and since when the
        # store has been failing (None while it answers).
        self._last_known: dict[str, StoredKey] | None = None
        self._failing_since: float | None = None
        self._last_attempt = float("-inf")

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

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        # Readiness must see the database itself, never the cache.
        await self._store.ping(timeout_seconds=timeout_seconds)

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
            last_known = self._last_known
            if last_known is not None and self._failing_since is not None:
                # An outage already found: the last list at once, a reload now and then.
                if arrival - self._last_attempt >= OUTAGE_RETRY_SECONDS:
                    self._start_load()
                return list(last_known.values())
            # Too old, never loaded or dropped: wait for a load (one for all callers). One
            # that started before arrival - max_age may be too old too: then loop, and the
            # next load starts after arrival.
            load = asyncio.shield(self._start_load())
            if last_known is None:
                await load
                continue
            try:
                await asyncio.wait_for(load, timeout=LAST_KNOWN_WAIT_SECONDS)
            except TimeoutError:
                self._failing(arrival)
            except Exception:  # the load's failure, already logged by _load_done
                pass
            if self._failing_since is not None and self._keys is None:
                return list(last_known.values())

    async def aclose(self) -> None:
        """Cancel a reload in progress (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _write(self, apply: _Write) -> None:
        if self._keys is not None:
            apply(self._keys)
        if self._last_known is not None and self._last_known is not self._keys:
            apply(self._last_known)
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

    def _failing(self, now: float) -> None:
        if self._failing_since is None:
            self._failing_since = now
            logger.warning("the key store cannot be read: serving the last key list loaded")

    async def _load(self) -> None:
        started = self._clock.now()
        self._last_attempt = started
        writes: list[_Write] = []
        self._writes = writes
        try:
            loaded = await self._store.list_keys()
        except BaseException as exc:
            # The list can no longer be refreshed: it is no longer served as current (a
            # caller then waits for a reload, and gets the last list loaded if that fails
            # too). Before any list was loaded, the store's error reaches the caller (503).
            self._keys = None
            if not isinstance(exc, asyncio.CancelledError):
                self._failing(started)
            raise
        finally:
            if self._writes is writes:
                self._writes = None
        keys = {key.kid: key for key in loaded}
        for apply in writes:
            apply(keys)
        self._keys, self._loaded_at = keys, started
        self._last_known = keys
        if self._failing_since is not None:
            logger.warning("the key store answers again")
            self._failing_since = None

    def _load_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        # Retrieved here so that a background reload nobody awaited never ends up as
        # "Task exception was never retrieved".
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("Loading the signing keys failed: %s", exc)
