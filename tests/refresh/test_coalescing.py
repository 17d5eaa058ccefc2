"""In-process refresh coalescing (app/refresh/coalescing.py)."""

from __future__ import annotations

import asyncio

import pytest

from app.refresh.coalescing import InProcessRefreshCoordinator, session_key

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Upstream:
    def __init__(self, *, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.release = asyncio.Event()

    async def refresh(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.fail_first and self.calls == 1:
            raise RuntimeError("invalid_grant")
        return f"rotated-{self.calls}"


async def test_concurrent_callers_share_one_refresh() -> None:
    coordinator = InProcessRefreshCoordinator(Clock())
    upstream = Upstream()
    tasks = [asyncio.create_task(coordinator.run("k", upstream.refresh)) for _ in range(20)]
    await asyncio.sleep(0)
    upstream.release.set()
    results = await asyncio.gather(*tasks)
    assert [value for value, _ in results] == ["rotated-1"] * 20
    # The first caller ran the refresh; the other 19 reused it.
    assert [reused for _, reused in results] == [False] + [True] * 19
    assert upstream.calls == 1


async def test_results_are_reused_within_the_grace_window_only() -> None:
    clock = Clock()
    coordinator = InProcessRefreshCoordinator(clock, grace_seconds=5)
    upstream = Upstream()
    upstream.release.set()
    assert await coordinator.run("k", upstream.refresh) == ("rotated-1", False)
    clock.t += 4.9
    assert await coordinator.run("k", upstream.refresh) == ("rotated-1", True)
    clock.t += 0.2
    assert await coordinator.run("k", upstream.refresh) == ("rotated-2", False)
    assert upstream.calls == 2


async def test_failures_are_not_reused() -> None:
    coordinator = InProcessRefreshCoordinator(Clock())
    upstream = Upstream(fail_first=True)
    upstream.release.set()
    with pytest.raises(RuntimeError):
        await coordinator.run("k", upstream.refresh)
    assert await coordinator.run("k", upstream.refresh) == ("rotated-2", False)


async def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    coordinator = InProcessRefreshCoordinator(Clock())
    upstream = Upstream()
    first = asyncio.create_task(coordinator.run("k", upstream.refresh))
    second = asyncio.create_task(coordinator.run("k", upstream.refresh))
    await asyncio.sleep(0)
    first.cancel()
    upstream.release.set()
    assert await second == ("rotated-1", True)


async def test_different_sessions_do_not_share() -> None:
    coordinator = InProcessRefreshCoordinator(Clock())
    upstream = Upstream()
    upstream.release.set()
    await coordinator.run(session_key("oidc", "development", "a", "s"), upstream.refresh)
    await coordinator.run(session_key("oidc", "development", "b", "s"), upstream.refresh)
    await coordinator.run(session_key("oidc", "production", "a", "s"), upstream.refresh)
    # More scope than a cached result was refreshed for is a new refresh.
    await coordinator.run(session_key("oidc", "development", "a", "s repo"), upstream.refresh)
    assert upstream.calls == 4


def test_the_key_does_not_contain_the_token() -> None:
    assert "secret-token" not in session_key("oidc", "development", "secret-token", "s")
