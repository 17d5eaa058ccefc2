"""One app for the whole handler suite (building one takes ~0.3 s); every test gets the
stub authenticators and the clock reset. Tests that need another config build their own
app with ``tests.fakes.app_factory.build_app``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.fakes.app_factory import JarlessClient, build_app, make_client
from tests.fakes.clock import FakeClock
from tests.fakes.stub_provider import StubAuthenticator, StubProvider, reset_all

if TYPE_CHECKING:
    from connexion import AsyncApp


@dataclass
class World:
    clock: FakeClock
    stub: StubProvider
    stub_persist: StubProvider
    app: AsyncApp
    client: JarlessClient


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    clock = FakeClock()
    stub = StubProvider()
    stub_persist = StubProvider(persist_scopes=True, required_scopes=("openid",))
    app = build_app(clock=clock, stub=stub, stub_persist=stub_persist)
    with make_client(app) as client:
        yield World(clock, stub, stub_persist, app, client)


@pytest.fixture
def clock(world: World) -> FakeClock:
    world.clock.reset()
    return world.clock


@pytest.fixture
def stub(world: World) -> StubProvider:
    reset_all(world.stub)
    return world.stub


@pytest.fixture
def stub_persist(world: World) -> StubProvider:
    reset_all(world.stub_persist)
    return world.stub_persist


@pytest.fixture
def client(
    world: World, clock: FakeClock, stub: StubProvider, stub_persist: StubProvider
) -> JarlessClient:
    return world.client


@pytest.fixture
def stub_auth(stub: StubProvider) -> StubAuthenticator:
    """The `stub` provider's `development` authenticator."""
    return stub.instances["development"]


@pytest.fixture
def persist_auth(stub_persist: StubProvider) -> StubAuthenticator:
    """The `stubpersist` provider's `development` authenticator."""
    return stub_persist.instances["development"]
