"""CachedKeyStore: the database key list served from memory, stale-while-revalidate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from app.config.settings import Settings, read_settings
from app.core.errors import ServiceUnavailableError
from app.db.database import Database
from app.identity.db_stores import DatabaseKeyStore
from app.identity.key_cache import (
    LAST_KNOWN_WAIT_SECONDS,
    OUTAGE_RETRY_SECONDS,
    CachedKeyStore,
)
from app.identity.keys import MemoryKeyStore, StoredKey
from app.identity.tokens import TokenIssuer
from app.server.application import create_app
from app.server.wiring import Dependencies, _stores
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio


def _key(kid: str, created_at: float = 1_700_000_000.0) -> StoredKey:
    return StoredKey(kid=kid, jwk={"kty": "EC", "kid": kid}, created_at=created_at)


class CountingStore(MemoryKeyStore):
    """The shared database: counts reads; a read sees the rows as they were when it
    started (its snapshot), and can be held in flight (``gate``) or made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.pings = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def list_keys(self) -> list[StoredKey]:
        self.reads += 1
        fail = self.fail
        snapshot = await super().list_keys()
        await self.gate.wait()
        if fail:
            raise ServiceUnavailableError("Key store unavailable: connection refused")
        return snapshot

    async def ping(self, *, timeout_seconds: float | None = None) -> None:
        self.pings += 1


async def _settle() -> None:
    """Let background reloads run to completion (the stores never really wait)."""
    for _ in range(10):
        await asyncio.sleep(0)


def _kids(keys: Sequence[StoredKey]) -> list[str]:
    return [k.kid for k in keys]


async def test_serves_from_memory_within_the_interval_then_reloads_in_the_background(
    clock: FakeClock,
) -> None:
    store = CountingStore()
    await store.add_key(_key("a"))
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    start = clock.now()
    assert _kids(await cache.list_keys()) == ["a"]
    assert store.reads == 1
    # Another instance publishes a key: not seen within the interval, no reads.
    await store.add_key(_key("b"))
    for step in range(20):
        clock.current = start + step * 0.05
        assert _kids(await cache.list_keys()) == ["a"]
        await _settle()
    assert store.reads == 1
    # Interval over: the caller still gets the current list at once, one reload starts.
    clock.current = start + 1.0
    assert _kids(await cache.list_keys()) == ["a"]
    await asyncio.sleep(0)
    assert store.reads == 2
    await _settle()
    assert _kids(await cache.list_keys()) == ["a", "b"]
    assert store.reads == 2


async def test_one_background_reload_for_many_concurrent_callers(clock: FakeClock) -> None:
    store = CountingStore()
    await store.add_key(_key("a"))
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    await cache.list_keys()
    await store.add_key(_key("b"))
    store.gate.clear()  # the reload stays in flight
    clock.advance(1.5)
    lists = await asyncio.gather(*(cache.list_keys() for _ in range(50)))
    assert all(_kids(keys) == ["a"] for keys in lists)
    assert store.reads == 2
    await _settle()
    lists = await asyncio.gather(*(cache.list_keys() for _ in range(50)))
    assert all(_kids(keys) == ["a"] for keys in lists)
    assert store.reads == 2
    store.gate.set()
    await _settle()
    assert _kids(await cache.list_keys()) == ["a", "b"]
    assert store.reads == 2


async def test_a_list_too_old_to_serve_waits_for_a_reload_newer_than_the_caller(
    clock: FakeClock,
) -> None:
    store = CountingStore()
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    assert cache.publish_delay == 2.0
    start = clock.now()
    await cache.list_keys()
    store.gate.clear()
    clock.current = start + 1.5
    await cache.list_keys()  # starts a reload (snapshot at 1.5: no keys), held
    await _settle()
    assert store.reads == 2
    clock.current = start + 2.0
    await store.add_key(_key("b"))  # another instance, after that snapshot
    # The list loaded at 0 may not be served any more: these wait for the reload.
    clock.current = start + 2.1
    early = [asyncio.create_task(cache.list_keys()) for _ in range(10)]
    await _settle()
    # For these even the held reload is too old (1.5 < 3.6 - 2): they need a newer one.
    clock.current = start + 3.6
    late = [asyncio.create_task(cache.list_keys()) for _ in range(10)]
    await _settle()
    assert not any(task.done() for task in early + late)
    store.gate.set()
    assert all(_kids(keys) == [] for keys in await asyncio.gather(*early))
    assert all(_kids(keys) == ["b"] for keys in await asyncio.gather(*late))
    assert store.reads == 3


async def test_concurrent_first_loads_share_one_read(clock: FakeClock) -> None:
    store = CountingStore()
    await store.add_key(_key("a"))
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    lists = await asyncio.gather(*(cache.list_keys() for _ in range(50)))
    assert all(_kids(keys) == ["a"] for keys in lists)
    assert store.reads == 1


async def test_writes_go_through_and_show_at_once(clock: FakeClock) -> None:
    store = CountingStore()
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    # Not loaded yet: a write alone cannot make a list.
    await cache.add_key(_key("a"))
    assert _kids(await cache.list_keys()) == ["a"]
    assert store.reads == 1
    await cache.add_key(_key("b"))
    assert _kids(await store.list_keys()) == ["a", "b"]
    assert _kids(await cache.list_keys()) == ["a", "b"]
    await cache.remove_keys(["a"])
    assert _kids(await store.list_keys()) == ["b"]
    assert _kids(await cache.list_keys()) == ["b"]
    assert store.reads == 3  # the two direct reads above only
    await cache.ping()
    assert store.pings == 1


async def test_writes_during_a_reload_survive_its_older_snapshot(clock: FakeClock) -> None:
    store = CountingStore()
    await store.add_key(_key("old"))
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    await cache.list_keys()
    store.gate.clear()
    clock.advance(1.0)
    await cache.list_keys()  # reload in flight, its snapshot holds "old" only
    await _settle()
    await cache.add_key(_key("new"))
    await cache.remove_keys(["old"])
    assert _kids(await cache.list_keys()) == ["new"]
    store.gate.set()
    await _settle()
    assert _kids(await cache.list_keys()) == ["new"]


async def test_during_an_outage_the_last_list_is_served_and_the_store_is_not_hammered(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The reliability review: the JWKS answered 503 for the whole of a database outage.
    async def run() -> None:
        store = CountingStore()
        await store.add_key(_key("a"))
        cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
        await cache.list_keys()

        store.fail = True
        clock.advance(1.0)
        # The reload finds the outage in the background; this caller is not delayed.
        assert _kids(await cache.list_keys()) == ["a"]
        await _settle()
        reads = store.reads
        # Every caller during the outage gets the last list, without a read each.
        results = await asyncio.gather(*(cache.list_keys() for _ in range(10)))
        assert all(_kids(r) == ["a"] for r in results)
        assert store.reads == reads
        # Now and then one reload tries the store again.
        clock.advance(OUTAGE_RETRY_SECONDS)
        assert _kids(await cache.list_keys()) == ["a"]
        await _settle()
        assert store.reads == reads + 1

        store.fail = False
        await store.add_key(_key("b"))
        clock.advance(OUTAGE_RETRY_SECONDS)
        await cache.list_keys()  # starts the reload that finds the store back
        await _settle()
        assert _kids(await cache.list_keys()) == ["a", "b"]

    await run()
    assert "serving the last key list loaded" in caplog.text
    assert "the key store answers again" in caplog.text
    assert "never retrieved" not in caplog.text


async def test_before_any_list_was_loaded_the_outage_is_the_callers_error(clock: FakeClock) -> None:
    store = CountingStore()
    store.fail = True
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    with pytest.raises(ServiceUnavailableError, match="Key store unavailable"):
        await cache.list_keys()


async def test_a_store_that_hangs_costs_a_caller_at_most_the_wait(clock: FakeClock) -> None:
    class HangingStore(CountingStore):
        hang = False

        async def list_keys(self) -> list[StoredKey]:
            if self.hang:
                await asyncio.Event().wait()
            return await super().list_keys()

    store = HangingStore()
    await store.add_key(_key("a"))
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    await cache.list_keys()
    store.hang = True
    clock.advance(2.0)  # past max_age: the caller must wait for a reload ...
    keys = await asyncio.wait_for(cache.list_keys(), timeout=LAST_KNOWN_WAIT_SECONDS * 10)
    # ... and gets the last list once the wait is over; the next caller at once.
    assert _kids(keys) == ["a"]
    assert _kids(await asyncio.wait_for(cache.list_keys(), timeout=0.1)) == ["a"]
    await cache.aclose()


async def test_aclose_cancels_a_reload_in_flight(clock: FakeClock) -> None:
    store = CountingStore()
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    store.gate.clear()
    waiting = asyncio.create_task(cache.list_keys())
    await _settle()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    store.gate.set()
    assert await cache.list_keys() == []


def test_the_issuer_takes_its_publish_delay_from_the_cache(clock: FakeClock) -> None:
    cached = CachedKeyStore(MemoryKeyStore(), clock, refresh_seconds=1.5)
    issuer = TokenIssuer(issuer="http://x/api/auth", key_store=cached, clock=clock)
    assert issuer._publish_delay == 3.0
    plain = TokenIssuer(issuer="http://x/api/auth", key_store=MemoryKeyStore(), clock=clock)
    assert plain._publish_delay == 0.0
    with pytest.raises(ValueError, match="publish_delay"):
        TokenIssuer(
            issuer="http://x/api/auth",
            key_store=cached,
            clock=clock,
            expiration_seconds=600,
            publish_delay=300,
        )


def _settings(provider: str) -> Settings:
    return read_settings(
        {
            "app": {"baseUrl": "http://localhost:3000"},
            "backend": {"baseUrl": "http://localhost:7007"},
            "auth": {"keyStore": {"provider": provider}, "providers": {"guest": {}}},
        }
    )


async def test_only_the_database_key_store_is_cached(clock: FakeClock, tmp_path: Path) -> None:
    database = Database("sqlite+aiosqlite:///:memory:")
    deps = Dependencies(clock=clock, config_dir=tmp_path)
    key_store, _, _ = _stores(_settings("database"), database, deps)
    assert isinstance(key_store, CachedKeyStore)
    assert isinstance(key_store._store, DatabaseKeyStore)
    key_store, _, _ = _stores(_settings("memory"), database, deps)
    assert isinstance(key_store, MemoryKeyStore)
    await database.close()


def test_an_exclusive_store_needs_no_publish_delay(clock: FakeClock) -> None:
    # An in-memory database: no other process writes keys, the write-through list is whole.
    assert CachedKeyStore(MemoryKeyStore(), clock, exclusive=True).publish_delay == 0.0
    assert CachedKeyStore(MemoryKeyStore(), clock).publish_delay > 0.0


class CancelSeeingStore(CountingStore):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def list_keys(self) -> list[StoredKey]:
        try:
            return await super().list_keys()
        except asyncio.CancelledError:
            self.events.append("reload cancelled")
            raise


class ClosingTransport(httpx2.MockTransport):
    def __init__(self, events: list[str]) -> None:
        super().__init__(lambda request: httpx2.Response(404))
        self.events = events

    async def aclose(self) -> None:
        self.events.append("transport closed")


def test_the_app_cancels_a_background_reload_when_it_shuts_down(clock: FakeClock) -> None:
    events: list[str] = []
    store = CancelSeeingStore(events)
    cache = CachedKeyStore(store, clock, refresh_seconds=1.0)
    deps = Dependencies(clock=clock, key_store=cache, transport=ClosingTransport(events))
    app = create_app(_settings("database"), deps=deps)
    with TestClient(app, base_url="http://localhost:7007") as client:
        assert client.get("/api/auth/.well-known/jwks.json").status_code == 200
        reads = store.reads
        clock.advance(1.5)  # stale, still served: the next request starts a reload
        store.gate.clear()
        assert client.get("/api/auth/.well-known/jwks.json").status_code == 200
        assert store.reads == reads + 1
    # The lifespan's shutdown cancelled the reload still waiting, before it closed the
    # connections and the database it would use (not the event loop's teardown after it).
    assert events == ["reload cancelled", "transport closed"]
