"""TokenIssuer's publish delay: a key sits in the shared store long enough for every
instance's cached key list to hold it before it signs anything."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from app.identity.key_cache import CachedKeyStore
from app.identity.keys import MemoryKeyStore, StoredKey
from app.identity.tokens import TokenIssuer
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio

ISS = "http://localhost:7007/api/auth"
DELAY = 2.0


def _header_kid(token: str) -> str:
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


class RecordingStore(MemoryKeyStore):
    """Records when each key was committed; add_key can fail or be held."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.committed: dict[str, float] = {}
        self.fail_add = False
        self.add_gate = asyncio.Event()
        self.add_gate.set()

    async def add_key(self, key: StoredKey) -> None:
        await self.add_gate.wait()
        if self.fail_add:
            raise RuntimeError("store down")
        await super().add_key(key)
        self.committed[key.kid] = self.clock.now()


class Signer:
    """An issuer whose waits move the fake clock, with every signature recorded."""

    def __init__(self, clock: FakeClock, store: RecordingStore, **kwargs: Any) -> None:
        self.clock = clock
        self.store = store
        self.sleeps: list[float] = []
        self.signed: list[tuple[str, float]] = []  # (kid, when)
        self.issuer = TokenIssuer(
            issuer=ISS,
            key_store=store,
            clock=clock,
            publish_delay=DELAY,
            sleep=self._sleep,
            **kwargs,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def sign(self) -> str:
        token = await self.issuer.issue_token(sub="user:default/jane", ent=[])
        # Nothing in issue_token moves the clock after choosing the key.
        self.signed.append((_header_kid(token), self.clock.now()))
        return _header_kid(token)

    def check_published_ahead(self, expiration: float) -> None:
        for kid, when in self.signed:
            assert self.store.committed[kid] + DELAY <= when
            created = self.store._keys[kid].created_at
            assert when < created + expiration


async def test_the_first_key_is_published_then_waited_for(clock: FakeClock) -> None:
    start = clock.now()
    signer = Signer(clock, RecordingStore(clock))
    kids = await asyncio.gather(*(signer.sign() for _ in range(10)))
    assert len(set(kids)) == 1
    assert list(signer.store.committed) == kids[:1]
    assert signer.sleeps == [DELAY]
    assert clock.now() == start + DELAY
    signer.check_published_ahead(3600)
    # From then on no more waiting.
    clock.advance(10)
    assert await signer.sign() == kids[0]
    assert signer.sleeps == [DELAY]


async def test_a_first_key_published_at_startup_spares_the_first_sign_in_the_wait(
    clock: FakeClock,
) -> None:
    signer = Signer(clock, RecordingStore(clock))
    await signer.issuer.publish_first_key()
    [kid] = signer.store.committed
    await signer.issuer.publish_first_key()  # once only
    assert list(signer.store.committed) == [kid]
    clock.advance(DELAY)
    assert await signer.sign() == kid
    assert signer.sleeps == []
    signer.check_published_ahead(3600)


async def test_a_sign_in_right_after_startup_waits_only_the_rest_of_the_delay(
    clock: FakeClock,
) -> None:
    signer = Signer(clock, RecordingStore(clock))
    await signer.issuer.publish_first_key()
    clock.advance(DELAY / 4)
    await signer.sign()
    assert signer.sleeps == [pytest.approx(DELAY * 3 / 4)]
    signer.check_published_ahead(3600)


async def test_rotation_publishes_ahead_and_signs_with_the_old_key_meanwhile(
    clock: FakeClock,
) -> None:
    start = clock.now()
    signer = Signer(clock, RecordingStore(clock), expiration_seconds=600)
    old = await signer.sign()
    clock.current = start + 539
    assert await signer.sign() == old
    assert len(signer.store.committed) == 1
    # 59.5 s left: the next key is published, the old one still signs.
    clock.current = start + 540.5
    assert await signer.sign() == old
    assert len(signer.store.committed) == 2
    new = list(signer.store.committed)[1]
    clock.current = start + 542.4
    assert await signer.sign() == old
    assert len(signer.store.committed) == 2
    clock.current = start + 540.5 + DELAY
    assert await signer.sign() == new
    clock.current = start + 650
    assert await signer.sign() == new
    # Only the very first key was waited for; the JWKS holds both.
    assert signer.sleeps == [DELAY]
    assert [k["kid"] for k in await signer.issuer.list_public_keys()] == [old, new]
    signer.check_published_ahead(600)


async def test_a_rotation_after_an_idle_window_waits_for_its_key(clock: FakeClock) -> None:
    start = clock.now()
    signer = Signer(clock, RecordingStore(clock), expiration_seconds=600)
    old = await signer.sign()
    # Nothing signed in the last minute of the old key: no key was published ahead.
    clock.current = start + 601
    new = await signer.sign()
    assert new != old
    assert signer.sleeps == [DELAY, DELAY]
    assert clock.now() == start + 601 + DELAY
    signer.check_published_ahead(600)


async def test_a_failed_publication_keeps_the_current_key_and_retries(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    start = clock.now()
    signer = Signer(clock, RecordingStore(clock), expiration_seconds=600)
    old = await signer.sign()
    signer.store.fail_add = True
    clock.current = start + 545
    assert await signer.sign() == old
    assert "Failed to publish the next signing key" in caplog.text
    signer.store.fail_add = False
    clock.current = start + 546
    assert await signer.sign() == old
    assert len(signer.store.committed) == 2
    clock.current = start + 546 + DELAY
    assert await signer.sign() != old
    signer.check_published_ahead(600)


async def test_one_publication_while_others_keep_signing(clock: FakeClock) -> None:
    start = clock.now()
    signer = Signer(clock, RecordingStore(clock), expiration_seconds=600)
    old = await signer.sign()
    clock.current = start + 560
    signer.store.add_gate.clear()
    publishing = asyncio.create_task(signer.sign())
    await asyncio.sleep(0)
    # Not held up by the publication in progress, and not publishing again.
    kids = await asyncio.gather(*(signer.sign() for _ in range(20)))
    assert kids == [old] * 20
    signer.store.add_gate.set()
    assert await publishing == old
    assert len(signer.store.committed) == 2


# -- two instances sharing one key database, each behind its own cache ------------------


class Timeline:
    """Fake time that a driver task moves in small steps; waits poll it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def sleep(self, seconds: float) -> None:
        target = self.clock.now() + seconds
        while self.clock.now() < target:
            await asyncio.sleep(0)

    async def drive(self, until: float, step: float) -> None:
        while self.clock.now() < until:
            self.clock.advance(step)
            for _ in range(8):
                await asyncio.sleep(0)


class SharedDatabase(MemoryKeyStore):
    """Reads see the rows committed when they start and answer later; writes take time."""

    def __init__(self, timeline: Timeline, *, read_latency: float, write_latency: float) -> None:
        super().__init__()
        self.timeline = timeline
        self.read_latency = read_latency
        self.write_latency = write_latency
        self.reads = 0

    async def add_key(self, key: StoredKey) -> None:
        await self.timeline.sleep(self.write_latency)
        await super().add_key(key)

    async def list_keys(self) -> list[StoredKey]:
        self.reads += 1
        snapshot = await super().list_keys()
        await self.timeline.sleep(self.read_latency)
        return snapshot


@pytest.mark.parametrize(
    ("read_latency", "write_latency"),
    [(0.3, 0.2), (1.7, 0.6)],
    ids=["fast-database", "reads-slower-than-the-refresh-interval"],
)
async def test_two_instances_always_verify_each_others_tokens(
    read_latency: float, write_latency: float
) -> None:
    expiration = 600
    clock = FakeClock()
    start = clock.now()
    end = start + 1400  # two rotations
    timeline = Timeline(clock)
    database = SharedDatabase(timeline, read_latency=read_latency, write_latency=write_latency)
    caches = [CachedKeyStore(database, clock, refresh_seconds=1.0) for _ in range(2)]
    issuers = [
        TokenIssuer(
            issuer=ISS,
            key_store=cache,
            clock=clock,
            expiration_seconds=expiration,
            sleep=timeline.sleep,
        )
        for cache in caches
    ]
    # Every signature so far: (kid, token expiry); checked against both JWKS all along.
    issued: list[tuple[str, float]] = []
    checks = 0
    rng = random.Random(7)

    async def jwks_kids(issuer: TokenIssuer) -> set[str]:
        return {k["kid"] for k in await issuer.list_public_keys()}

    async def client(me: int, first: float, idle: tuple[float, float]) -> None:
        nonlocal checks
        await timeline.sleep(first - clock.now())
        other = issuers[1 - me]
        while clock.now() < end:
            token = await issuers[me].issue_token(sub=f"user:default/u{me}", ent=[])
            issued.append((_header_kid(token), math.floor(clock.now()) + expiration))
            keys = await other.list_public_keys()
            decoded = jwt.decode(token, KeySet.import_key_set({"keys": keys}), algorithms=["ES256"])
            assert decoded.claims["sub"] == f"user:default/u{me}"
            checks += 1
            pause = rng.uniform(0.0, 2.0)
            if idle[0] <= clock.now() - start < idle[1]:
                pause = idle[1] - (clock.now() - start)
            await timeline.sleep(pause)

    async def monitor() -> None:
        nonlocal checks
        while clock.now() < end:
            now = clock.now()
            live = {kid for kid, exp in issued if exp > now}
            for issuer in issuers:
                missing = live - await jwks_kids(issuer)
                assert not missing, f"at +{now - start:.1f}s"
            checks += 1
            await timeline.sleep(0.1)

    async def run() -> None:
        driver = asyncio.create_task(timeline.drive(end + 10, 0.1))
        # B starts later; A is idle across its key's last minute (a waited rotation),
        # B across the middle of its second key's life.
        await asyncio.gather(
            client(0, start, (520.0, 640.0)),
            client(1, start + 30.7, (900.0, 1000.0)),
            monitor(),
        )
        await driver
        for cache in caches:
            await cache.aclose()

    await run()
    kids = {kid for kid, _ in issued}
    assert len(kids) >= 5  # two first keys, at least three rotations
    assert checks > 1_000
    # About one read per cache and refresh interval, not one per JWKS request.
    assert database.reads <= 2 * (end - start) * 1.05
