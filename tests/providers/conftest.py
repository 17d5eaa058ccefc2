from __future__ import annotations

import pytest

import tests.fakes  # noqa: F401 - first: quiets third-party import-time warnings
from tests.fakes.clock import FakeClock
from tests.fakes.fake_idp import FakeIdP


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeIdP:
    return FakeIdP(clock=clock)
